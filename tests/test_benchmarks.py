"""The benchmark scripts that CI keeps alive in their ``--small`` mode (no GPU there)."""

from __future__ import annotations

import json
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


@pytest.mark.slow
def test_gpu_benchmark_runs_small_on_the_cpu():
    methods = ("--methods", "finetune", "moe-adapters")
    out = run_script("gpu.py", "--small", *methods, "--device", "cpu")
    assert out.startswith("device: cpu")
    assert "finetune" in out and "images/s" in out and "ratio" in out
    assert "same matrices" in out and "main job" in out


def test_loader_benchmark_compares_workers():
    out = run_script("loader.py", "--small")
    assert "0 workers" in out and "2 workers" in out and "images/s" in out


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
    assert report[0]["idle_while_a_cell_waited"] == 0, report[0]
