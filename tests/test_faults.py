"""The fault suite: nothing lost, nothing silently wrong.

- Kills: ``clviz run`` processes are stopped at seeded points (SIGKILL during training, half-way
  through writing a checkpoint or the results; Ctrl-C during training; a cache write killed
  half-way, in-process);
  rerunning the same command resumes each and ends with the matrix of a run that never stopped,
  and leaves no temporary file behind.
- Corruption: bit flips and truncations of every kind of file a run writes (results, checkpoint,
  cache) are detected, named, and rebuilt with ``--force``.
- Concurrency: two configs started at once on one folder: one trains, the other fails at once,
  and the folder ends with the winner's complete results.
- Bad inputs: every probe of the issue is refused before any work, with a message naming the
  setting, and never a traceback.

The runs are tiny (the smoke stream, two steps per task) and the killed processes run side by
side, so the whole file takes well under a minute of two cores.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import as_from_a_terminal

from clviz.cli import main
from clviz.core.integrity import IntegrityError
from clviz.core.result import RunResult
from clviz.core.store import RunStore, memo

SEED = 20240611  # draws the kill points and the flipped bits
RUN = ["run", "--method", "finetune", "--stream", "smoke", "--steps", "2"]
STEPS = 6  # optimiser steps of RUN: 3 tasks x 2
TIMEOUT = 300

# A process that runs the CLI with one fault injected: ``point k`` stops it at the k-th event.
DRIVER = r"""
import json, os, signal, sys, time
import torch
import clviz.core.integrity as integrity
import clviz.core.store as store

point, k, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
seen = [0]

def hit():
    seen[0] += 1
    return seen[0] == k

step = torch.optim.AdamW.step
def faulty_step(self, *a, **kw):
    if point in ("step", "sigint") and hit():
        os.kill(os.getpid(), signal.SIGKILL if point == "step" else signal.SIGINT)
    if point == "slow":
        time.sleep(0.3)
    return step(self, *a, **kw)
torch.optim.AdamW.step = faulty_step

write = integrity.write_bytes_durably
def faulty_write(path, *chunks):
    target = {"checkpoint": ".checkpoint.pt.", "results": "results.json"}
    if point in target and target[point] in str(path) and hit():
        data = b"".join(bytes(c) for c in chunks)
        with open(path, "wb") as f:  # half the file reaches the disk, then the process dies
            f.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return write(path, *chunks)
integrity.write_bytes_durably = store.write_bytes_durably = faulty_write

if point == "late":
    time.sleep(3)
from clviz.cli import main
if point != "many":
    sys.exit(main(argv))
codes = [main(list(args)) for args in json.loads(argv[0])]  # several commands, one process
print(json.dumps(codes))
sys.exit(max(codes))
"""


def clviz(env: dict[str, str], point: str, k: int, *args: str) -> subprocess.Popen:
    """``clviz *args`` in a fresh process with the fault ``point`` at its ``k``-th event."""
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, point, str(k), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, err


def matrix(folder: Path) -> list[list[float]]:
    return json.loads((folder / "results.json").read_text())["matrix"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fault-cache")
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "CLVIZ_RESULTS": str(root),
    }


def kill_points() -> list[tuple[str, int]]:
    """Where the runs are stopped, drawn from SEED (the shared cache's own kill, half-way
    through its write, is :func:`test_a_cache_write_killed_half_way_is_rebuilt`)."""
    rng = random.Random(SEED)
    return [
        ("step", rng.randint(3, STEPS)),  # SIGKILL while training task 2 or 3
        ("checkpoint", rng.randint(1, 3)),  # SIGKILL half-way through a checkpoint
        ("results", 1),  # SIGKILL half-way through results.json
        ("sigint", rng.randint(3, STEPS)),  # Ctrl-C while training task 2 or 3
    ]


@dataclass
class Faults:
    """What the fault processes did: {name: (rc, stderr, folder)} of the interrupted runs and
    the two contenders, the matrix of a run that never stopped, and the rerun process's exit
    codes and stderr."""

    outcomes: dict[str, tuple[int, str, Path]]
    reference: list[list[float]]
    rerun_codes: list[int]
    rerun_err: str
    base: Path


@pytest.fixture(scope="module")
def faults(env, tmp_path_factory) -> Faults:
    """Every kill point in its own folder and two contenders on one folder, all side by side;
    then one process reruns each interrupted command, and tries a finished run whose
    results.json was edited and a partial run whose checkpoint had a bit flipped, without and
    with --force."""
    base = tmp_path_factory.mktemp("faults")
    procs = {
        f"{p}-{k}": clviz(env, p, k, *RUN, "--out", str(base / f"{p}-{k}"))
        for p, k in kill_points()
    }
    # the 2-step run starts first and trains slowly; the 3-step one starts late, on its folder
    shared = str(base / "shared")
    procs["steps2"] = clviz(env, "slow", 0, *RUN, "--out", shared)
    procs["steps3"] = clviz(env, "late", 0, *RUN[:-1], "3", "--out", shared)
    outcomes = {name: (*finish(proc), base / name) for name, proc in procs.items()}
    assert outcomes["steps2"][0] == 0, outcomes["steps2"][1]
    reference = matrix(base / "shared")  # a 2-step run that never stopped

    edited = json.loads((base / "shared" / "results.json").read_text())
    edited["matrix"][0][0] += 1.0  # one accuracy edited by hand
    (base / "shared" / "results.json").write_text(json.dumps(edited, indent=2))
    partial = next(n for n in outcomes if n.startswith("sigint"))
    (base / "flipped").mkdir()
    data = bytearray((base / partial / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0x40  # a bit in the middle of the weights
    (base / "flipped" / "checkpoint.pt").write_bytes(bytes(data))

    again = [[*RUN, "--out", str(base / n)] for n in outcomes if not n.startswith("steps")]
    for folder in (shared, str(base / "flipped")):
        again += [[*RUN, "--out", folder], [*RUN, "--out", folder, "--force"]]
    rerun = clviz(env, "many", 0, json.dumps(again))
    out, err = rerun.communicate(timeout=TIMEOUT)
    return Faults(outcomes, reference, json.loads(out.splitlines()[-1]), err, base)


def test_killed_runs_resume_to_the_same_matrix(faults):
    killed = {n: v for n, v in faults.outcomes.items() if not n.startswith("steps")}
    assert len(killed) == len(kill_points())
    assert faults.rerun_codes[: len(killed)] == [0] * len(killed), faults.rerun_err
    for name, (rc, err, folder) in killed.items():
        assert rc != 0, f"{name}: the fault did not stop the run"
        assert "Traceback" not in err, err
        assert matrix(folder) == faults.reference, name
        assert not list(folder.glob(".*.tmp")), f"{name}: temporary files left behind"


def test_ctrl_c_says_where_a_rerun_resumes(faults):
    rc, err, folder = next(v for n, v in faults.outcomes.items() if n.startswith("sigint"))
    k = int(folder.name.split("-")[1])
    task = (k - 1) // 2 + 1  # the task being trained when Ctrl-C came (2 steps per task)
    assert rc == 130 and "Traceback" not in err
    assert f"interrupted; rerun the same command to resume from task {task}" in err


def test_two_configs_at_once_on_one_folder_lose_nothing(faults):
    rc, err, _ = faults.outcomes["steps3"]
    assert rc == 2 and "Traceback" not in err
    assert "another clviz run holds the run folder" in err or "train.steps: 2 there" in err, err
    assert len(faults.reference) == 3  # the winner's complete results stayed in the folder


def test_damaged_run_files_are_refused_and_rebuilt_with_force(faults):
    """An edited results.json and a flipped bit in a partial run's checkpoint: refused, naming
    the file and --force; with --force, rebuilt (from the checkpoint; afresh) to the same
    matrix."""
    assert faults.rerun_codes[-4:] == [2, 0, 2, 0], faults.rerun_err
    for folder, name in (("shared", "results.json"), ("flipped", "checkpoint.pt")):
        path = faults.base / folder / name
        assert f"{path} is damaged" in faults.rerun_err
        assert matrix(faults.base / folder) == faults.reference
    assert "--force" in faults.rerun_err and "Traceback" not in faults.rerun_err


# ---------------------------------------------------------------------- corruption
def result() -> RunResult:
    return RunResult("finetune", ["a", "b"], [[80.0, 30.0], [50.0, 90.0]], zero_shot=[40.0, 35.0])


def damage(path: Path, rng: random.Random) -> list[tuple[str, bytes]]:
    """Damaged versions of ``path``'s bytes: four seeded bit flips (one in the first 64 bytes,
    three anywhere) and three truncations (the last drops more than a final newline)."""
    data = path.read_bytes()
    out = []
    for limit in (64, len(data), len(data), len(data)):
        bit = rng.randrange(min(limit, len(data)) * 8)
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        out.append((f"bit {bit} flipped", bytes(flipped)))
    for cut in (0, len(data) // 2, len(data) - 2):
        out.append((f"truncated to {cut} bytes", data[:cut]))
    return out


def test_every_damage_to_every_kind_of_file_is_detected(tmp_path):
    import torch

    rng = random.Random(SEED)
    store = RunStore(tmp_path / "run", {"config": 1})
    store.save_checkpoint({"rows": [[1.0]], "weights": torch.randn(64)})
    store.save(result())
    cache = tmp_path / "cache" / "k.pt"
    memo(cache, lambda: torch.randn(32))
    readers = {
        "results.json": lambda: RunStore(tmp_path / "run", {"config": 1}).finished(),
        "checkpoint.pt": lambda: RunStore(tmp_path / "run", {"config": 1}).checkpoint(),
        "cache": lambda: memo(cache, lambda: pytest.fail("recomputed a damaged cache")),
    }
    files = {
        "results.json": store.path("results.json"),
        "checkpoint.pt": store.path("checkpoint.pt"),
    }
    files["cache"] = cache
    detected = 0
    for kind, path in files.items():
        good = path.read_bytes()
        for what, bad in damage(path, rng):
            path.write_bytes(bad)
            with pytest.raises(IntegrityError, match="--force") as err:
                readers[kind]()
            assert str(path) in str(err.value), (kind, what)
            detected += 1
        path.write_bytes(good)
        readers[kind]()  # the intact file reads again
    assert detected == 21


def test_a_cache_write_killed_half_way_is_rebuilt(tmp_path, dead_pid):
    """What a SIGKILL half-way through the shared cache leaves: a half-written temporary file
    of a process that is gone, and no cache. The next run computes the cache and sweeps the
    file; a live writer's temporary file beside it is left alone."""
    import torch

    from clviz.core.io import temp_prefix

    cache = tmp_path / "zero-shot" / "key.pt"
    cache.parent.mkdir()
    stale = cache.parent / f".key.pt.clviz-{dead_pid}-abc123.tmp"
    stale.write_bytes(b"CLVIZ-SEALED 1\n{half a hea")
    live = cache.parent / f"{temp_prefix('other.pt')}abc.tmp"  # a write in progress
    live.write_bytes(b"")
    assert torch.equal(memo(cache, lambda: torch.ones(2)), torch.ones(2))
    assert not stale.exists() and live.exists()
    assert torch.equal(memo(cache, lambda: pytest.fail("recomputed")), torch.ones(2))


def test_force_removes_and_rebuilds_what_is_damaged(tmp_path):
    import torch

    store = RunStore(tmp_path, {"config": 1})
    store.save_checkpoint({"rows": []})
    store.save(result())
    for name in ("results.json", "checkpoint.pt"):
        path = tmp_path / name
        path.write_bytes(path.read_bytes()[:-3])
    forced = RunStore(tmp_path, {"config": 1}, force=True)
    assert forced.finished() is None and forced.checkpoint() is None
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "checkpoint.pt").exists()
    forced.release()
    cache = tmp_path / "cache.pt"
    memo(cache, lambda: torch.zeros(3))
    cache.write_bytes(cache.read_bytes()[:10])
    assert torch.equal(memo(cache, lambda: torch.ones(3), force=True), torch.ones(3))


# ---------------------------------------------------------------------- bad inputs
BAD_OPTIONS = [  # (method, --options, what the message says)
    ("wise-ft", '{"alpha": NaN}', "wise-ft option alpha must be a finite number"),
    ("wise-ft", '{"alpha": "0.5"}', "wise-ft option alpha must be a number, got '0.5'"),
    ("wise-ft", '{"alpha": 1.5}', "wise-ft option alpha must be in [0, 1]"),
    ("moe-adapters", '{"experts": "4"}', "option experts must be a whole number"),
    ("moe-adapters", '{"lr": "abc"}', "moe-adapters option lr must be a number"),
    ("moe-adapters", '{"lr": Infinity}', "option lr must be a finite number"),
    ("moe-adapters", '{"top_k": 9, "experts": 4}', "top_k (9) must be at most option experts"),
    ("lwf", '{"temperature": 0}', "lwf option temperature must be > 0"),
    ("wise-ft", "{alpha: 1}", "--options is not valid JSON"),
    ("wise-ft", "[1]", "--options must be a JSON object"),
]
BAD_INPUTS = [  # (arguments, what the message says)
    *[(["--method", m, "--options", o], message) for m, o, message in BAD_OPTIONS],
    (["--data-root", "/tmp"], "--data-root"),
    (["--out", "FILE"], "is a file, not a folder"),
    (["--pretrained", "GARBAGE"], "--pretrained"),
]
BAD_FLAGS = [
    (["--seed", "-1"], "--seed"),
    (["--steps", "-5"], "--steps"),
    (["--steps", "0"], "--steps"),
    (["--batch-size", "0"], "--batch-size"),
]


def test_bad_inputs_fail_before_any_work_naming_the_setting(tmp_path, capsys):
    (tmp_path / "FILE").write_text("not a folder")
    (tmp_path / "GARBAGE").write_bytes(random.Random(SEED).randbytes(300))
    for args, message in BAD_INPUTS:
        args = [a.replace("FILE", str(tmp_path / "FILE")) for a in args]
        args = [a.replace("GARBAGE", str(tmp_path / "GARBAGE")) for a in args]
        argv = ["run", "--method", "finetune", "--stream", "smoke", *args]
        if "--out" not in argv:
            argv += ["--out", str(tmp_path / "out")]
        assert main(argv) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
    for args, message in BAD_FLAGS:
        with pytest.raises(SystemExit) as exit_:
            main(["run", "--method", "finetune", "--stream", "smoke", *args])
        assert exit_.value.code == 2 and f"argument {message}" in capsys.readouterr().err
    assert not (tmp_path / "out" / "checkpoint.pt").exists()  # nothing trained
