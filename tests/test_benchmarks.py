"""The benchmark scripts that CI keeps alive in their ``--small`` mode (no GPU there)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def ratio_agrees(ratio: float, top: float, bottom: float, step: float, ratio_step=0.01) -> bool:
    """Whether a printed ratio is the quotient of two printed numbers (each rounded to a
    multiple of ``step``, the ratio to one of ``ratio_step``): within what rounding allows."""
    low = (top - step / 2) / (bottom + step / 2)
    high = (top + step / 2) / (bottom - step / 2) if bottom > step / 2 else float("inf")
    return low - ratio_step / 2 <= ratio <= high + ratio_step / 2


def test_ratio_agrees_allows_rounding_and_nothing_more():
    assert ratio_agrees(2.19, 67, 30, 1)  # 67 ms / 30 ms, both printed rounded
    assert not ratio_agrees(2.5, 67, 30, 1) and not ratio_agrees(2.19, 30, 67, 1)  # upside down
    assert ratio_agrees(0.50, 4.4, 8.8, 0.1) and not ratio_agrees(0.53, 4.4, 8.8, 0.1)
    assert ratio_agrees(75.0, 3.0, 0.0, 0.1)  # printed 0.0 s: any ratio above 60


@pytest.mark.slow
def test_gpu_benchmark_runs_small_on_the_cpu(tmp_path):
    """Every section runs and its numbers hold together: one throughput row per method asked
    for, the printed ratios are the quotients of the printed timings, the evaluation learns
    and times each of its three fake MTIL tasks and counts their test images."""
    from clviz.data.fake import make_fake_mtil
    from clviz.data.mtil import get_mtil_stream

    methods = ("--methods", "finetune", "moe-adapters")
    out = run_script("gpu.py", "--small", *methods, "--device", "cpu")
    assert out.startswith("device: cpu")
    assert "1. training throughput, batch 4, 2 steps per stage" in out  # --small's sizes
    rows = re.findall(r"^   (\S+) +([\d.]+) images/s   peak (.+)$", out, re.M)
    assert [name for name, _, _ in rows] == ["finetune", "moe-adapters"], out
    assert all(float(rate) > 0 and peak == "n/a" for _, rate, peak in rows)  # no CUDA memory
    moe, base, ratio = re.search(
        r"one MoE-Adapters step (\d+) ms; backbone forward\+backward\s+(\d+) ms; "
        r"ratio ([\d.]+) \(batch 4\)",
        out,
    ).groups()
    assert ratio_agrees(float(ratio), float(moe), float(base), 1), out
    n = int(re.search(r"3\. (\d+) x \1 evaluation of moe-adapters", out).group(1))
    learned = re.findall(r"^   (\S+): learned, DDAS fitted \(([\d.]+) s\)$", out, re.M)
    assert n == 3 and [name for name, _ in learned] == ["EuroSAT", "MNIST", "OxfordPet"], out
    assert all(float(seconds) >= 0 for _, seconds in learned)
    off, on = (float(x) for x in re.findall(r"feature cache (?:off|on): ([\d.]+) s", out))
    images, faster = re.search(r"(\d+) test images per row; ([\d.]+)x faster", out).groups()
    assert ratio_agrees(float(faster), off, on, 0.1), out
    assert "same matrices" in out
    names = [name for name, _ in learned]
    fake = make_fake_mtil(tmp_path / "mtil", names, 2, 1)  # the script's fake data, again
    tasks = get_mtil_stream("mtil:" + ",".join(names), fake, image_size=32)
    assert int(images) == sum(len(t.test_labels) for t in tasks)
    main = re.search(r"^4\. main job on the embedded world \(smoke .+\): (\d+) s$", out, re.M)
    assert int(main.group(1)) > 0, out


def test_loader_benchmark_compares_workers():
    """One row per fake dataset, in order: both rates positive, the speed-up printed is their
    quotient, and the batches were identical."""
    out = run_script("loader.py", "--small")
    assert "3 batches of 16 at 224 px per dataset" in out.splitlines()[0]  # --small's sizes
    rows = re.findall(
        r"^(\S+) +0 workers +([\d.]+) images/s   2 workers +([\d.]+) images/s"
        r"   \(([\d.]+)x, identical batches\)$",
        out,
        re.M,
    )
    assert [name for name, *_ in rows] == ["DTD", "EuroSAT", "Flowers"], out
    for _, serial, parallel, ratio in rows:
        assert float(serial) > 0 and float(parallel) > 0
        assert ratio_agrees(float(ratio), float(parallel), float(serial), 0.1), out


def test_a_notebook_runs_in_jupyterlab_in_headless_chromium(chromium, tmp_path):
    """What a student does: JupyterLab in a real browser, Run All; the figures draw, no cell
    fails, no JavaScript error (benchmarks/notebooks_in_jupyterlab.py, fast mode)."""
    out = run_script(
        "notebooks_in_jupyterlab.py", "00_quickstart", "--mode", "fast", "--out", str(tmp_path)
    )
    line = next(x for x in out.splitlines() if x.startswith("00_quickstart"))
    assert "figures   3" in line and "errors 0" in line, out
    report = json.loads((tmp_path / "walkthrough.json").read_text())
    assert report[0]["console_errors"] == [] and Path(report[0]["screenshot"]).stat().st_size
    # never a cell running while the kernel reads Idle (a lone sample between two queued
    # cells can catch it idle for a moment on a loaded machine)
    assert report[0]["longest_idle_while_a_cell_waited"] <= 1, report[0]
    # the printed line says what the saved report says
    seconds, figures, tables, passed, effects, idle, waited, errors = re.search(
        r" ([\d.]+) s  figures +(\d+)  tables +(\d+)  effects (\d+)/(\d+)"
        r"  idle while waiting (\d+)/(\d+)  live steps (?:yes|no)  errors (\d+)",
        line,
    ).groups()
    seen = report[0]
    assert float(seconds) == seen["seconds"] > 0 and int(figures) == seen["figures_drawn"] == 3
    assert int(tables) == seen["tables_drawn"] and int(errors) == len(seen["errors"]) == 0
    assert int(effects) == len(seen["effects"])
    assert int(passed) == sum(not e.startswith("✗") for e in seen["effects"])
    assert (int(idle), int(waited)) == (
        seen["idle_while_a_cell_waited"],
        seen["samples_while_a_cell_waited"],
    )
    total = re.search(r"^total (\d+) s", out, re.M).group(1)
    assert total == f"{seen['seconds']:.0f}"  # one notebook: the total is its time


def test_the_walkthrough_counts_the_longest_idle_stretch():
    spec = importlib.util.spec_from_file_location(
        "notebooks_in_jupyterlab",
        Path(__file__).parents[1] / "benchmarks/notebooks_in_jupyterlab.py",
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.longest_run([True, False, True, True, True, False, True]) == 3
    assert module.longest_run([False, False]) == 0 and module.longest_run([]) == 0
