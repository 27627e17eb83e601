"""Trust what you read: no result is stale, swapped, silently wrong or lost.

One test (or a few) per class of fault, each of which would have caught what a user found:

- stale input: replacing a weights file, a backbone config or a dataset's images at the same
  path makes a new run (content identity), not the old matrix;
- swapped file: an intact sealed file copied over another key's file is refused;
- foreign file: clviz's sweeps never touch a file clviz did not write, nor one whose writer lives;
- divergence: a non-finite loss stops the run, naming the method, task, step and rate, and every
  JSON clviz writes is strict;
- environment: the run folder is locked whatever ``RANK`` says; torchrun's variables are checked;
- force: every "rerun with --force" message is followed, and the rebuild gives the same matrix;
- late validation: what can be checked before any work is, with a message naming the setting.

Hostile datasets and dying processes have their own files (``test_hostile_datasets.py``,
``test_worker_lifetime.py``); ``docs/robustness.md`` lists every class with its outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clviz.cli import main
from clviz.core.integrity import IntegrityError, read_sealed, write_sealed
from clviz.core.io import json_safe, remove_stale_temps, strict_json, temp_prefix
from clviz.core.result import RunResult
from clviz.core.store import RunStore, memo
from clviz.experiments.profiles import make_config
from clviz.experiments.runs import run_store

RUN = ["run", "--method", "finetune", "--stream", "smoke", "--steps", "2"]


@pytest.fixture
def store_root(tmp_path, monkeypatch) -> Path:
    """A fresh results root for the test (the drawn world stays shared)."""
    root = tmp_path / "runs"
    monkeypatch.setenv("CLVIZ_RESULTS", str(root))
    return root


def matrix(folder: Path) -> list[list[float]]:
    return json.loads((folder / "results.json").read_text())["matrix"]


def tiny_weights(path: Path, scale: float = 1.0) -> Path:
    """A copy of the bundled tiny CLIP's weights as a local file (every tensor times ``scale``)."""
    from safetensors.torch import load_file, save_file

    from clviz.backbone import TINY_WEIGHTS

    state = {k: (v.float() * scale).half() for k, v in load_file(str(TINY_WEIGHTS)).items()}
    save_file(state, str(path))
    return path


# ---------------------------------------------------------------------- stale input
def test_a_replaced_weights_file_or_edited_config_is_a_new_run(tmp_path, store_root):
    """The identity covers what the paths hold: a file rewritten in place changes it."""
    weights = tiny_weights(tmp_path / "w.safetensors")
    config = make_config("embedded", "finetune", "smoke", 0, pretrained=str(weights))
    before = run_store(config).digest
    assert run_store(config).digest == before  # nothing changed: the same run
    tiny_weights(weights, scale=0.5)  # other weights at the same path
    assert run_store(config).digest != before

    from clviz.backbone import PACKAGE_DIR

    backbone = tmp_path / "narrow.json"
    shutil.copy(PACKAGE_DIR / "configs" / "clviz-tiny.json", backbone)
    config = make_config("embedded", "finetune", "smoke", 0)
    config.backbone = str(backbone)
    before = run_store(config).digest
    spec = json.loads(backbone.read_text())
    spec["vision_cfg"]["layers"] = 2  # edited in place
    backbone.write_text(json.dumps(spec))
    assert run_store(config).digest != before


def test_a_dataset_whose_images_change_is_a_new_run(tmp_path, store_root):
    from clviz.data.fake import make_fake_mtil

    root = make_fake_mtil(tmp_path / "data", ["DTD"])
    config = make_config("mtil", "finetune", "mtil:DTD", 0, data_root=str(root))
    before = run_store(config).digest
    image = next(p for p in sorted(root.rglob("*.jpg")))
    image.write_bytes(image.read_bytes() + b"\0")  # one image changed in place
    assert run_store(config).digest != before


def test_replacing_the_weights_file_retrains_instead_of_reusing(tmp_path, store_root, capsys):
    """Through the command line: the same command after the file changed trains a new run;
    unchanged, it reuses the finished one and says what it reused."""
    weights = tiny_weights(tmp_path / "w.safetensors")
    argv = [*RUN[:-1], "1", "--pretrained", str(weights)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "reused the finished run" in again and "backbone" in again
    tiny_weights(weights, scale=0.5)
    assert main(argv) == 0
    third = capsys.readouterr().out
    assert "reused" not in third
    folder = lambda out: out.strip().splitlines()[-1].split()[-1]  # noqa: E731
    assert folder(third) != folder(first)


# ---------------------------------------------------------------------- swapped file
def test_a_cache_entry_copied_over_another_is_refused(tmp_path):
    a, b = tmp_path / "zero-shot" / "aaaa.pt", tmp_path / "zero-shot" / "bbbb.pt"
    memo(a, lambda: torch.tensor([26.0]))
    memo(b, lambda: torch.tensor([12.5]))
    shutil.copy(a, b)  # intact bytes, wrong place
    with pytest.raises(IntegrityError, match="copied or moved here") as err:
        memo(b, lambda: pytest.fail("recomputed without --force"))
    assert str(b) in str(err.value) and "--force" in str(err.value)
    assert memo(b, lambda: torch.tensor([12.5]), force=True).item() == 12.5


def test_every_sealed_role_refuses_another_key(tmp_path):
    """Checkpoints, results, features and caches alike: read under another key is an error."""
    for role in ("checkpoint", "features", "cache", "results-part"):
        path = tmp_path / f"{role}.pt"
        write_sealed(path, {"x": 1}, role=role, key="run-a")
        assert read_sealed(path, role=role, key="run-a")[0] == {"x": 1}
        with pytest.raises(IntegrityError, match="copied or moved here"):
            read_sealed(path, role=role, key="run-b")
        with pytest.raises(IntegrityError, match="copied or moved here"):
            read_sealed(path, role="another-role", key="run-a")


def test_probe_features_copied_from_another_run_are_refused(tmp_path):
    from clviz.analysis.drift.store import load_snapshots

    write_sealed(tmp_path / "features.pt", {}, role="features", key="digest-of-another-run")
    with pytest.raises(IntegrityError, match="copied or moved here"):
        load_snapshots(tmp_path, key="digest-of-this-run")


# ---------------------------------------------------------------------- foreign files
def test_sweeps_touch_only_clviz_files_of_dead_writers(tmp_path):
    mine = tmp_path / ".notes.tmp"  # the user's own
    mine.write_text("keep me")
    live = tmp_path / f"{temp_prefix('results.json')}abc.tmp"  # this process writes it
    live.write_text("")
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dead = tmp_path / f".results.json.clviz-{dead_pid}-abc.tmp"
    dead.write_text("")
    assert remove_stale_temps(tmp_path) == [dead]
    assert mine.exists() and live.exists()


def test_taking_a_run_folder_keeps_the_users_files_even_when_the_run_fails(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".draft.tmp").write_text("the user's")
    assert main([*RUN, "--out", str(out), "--options", '{"nope": 1}']) == 2
    assert main([*RUN[:-1], "1", "--out", str(out)]) == 0
    assert (out / ".draft.tmp").read_text() == "the user's"


@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_out_is_refused_before_any_work(out, capsys, monkeypatch):
    monkeypatch.setattr("clviz.experiments.runs.load_stream", lambda *a: pytest.fail("worked"))
    assert main([*RUN, "--out", out]) == 2
    assert "--out is empty" in capsys.readouterr().err


# ---------------------------------------------------------------------- divergence
def test_a_diverging_run_stops_naming_method_task_step_and_rate(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--method",
            "moe-adapters",
            "--stream",
            "smoke",
            "--steps",
            "3",
            "--out",
            str(out),
            "--options",
            '{"lr": 1e9, "ddas_steps": 1}',
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert "moe-adapters diverged on task" in line and "at step" in line
    assert "the loss is nan" in line or "the loss is inf" in line
    assert "--options '{\"lr\": 1e+08}'" in line
    assert not (out / "results.json").exists()  # no matrix at chance saved as a result


def test_a_diverging_finetune_names_the_training_rate(tmp_path, capsys):
    assert main([*RUN, "--out", str(tmp_path), "--lr", "1e12"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "finetune diverged on task 1" in line and "--lr 1e+11" in line


def test_every_json_clviz_writes_is_strict(tmp_path):
    assert json_safe({"a": [1.0, float("nan")], "b": float("inf")}) == {"a": [1.0, None], "b": None}
    json.loads(strict_json({"x": float("-inf")}), parse_constant=pytest.fail)
    result = RunResult("finetune", ["a"], [[50.0]], zero_shot=[40.0])  # Transfer undefined
    store = RunStore(tmp_path, {"config": 1})
    store.save(result)
    text = (tmp_path / "results.json").read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert data["metrics"]["transfer"] is None
    assert RunStore(tmp_path, {"config": 1}).finished().matrix == [[50.0]]


# ---------------------------------------------------------------------- environment
def test_the_run_folder_is_locked_whatever_rank_says(tmp_path, monkeypatch):
    from clviz.core.lock import FolderBusyError

    monkeypatch.setenv("RANK", "1")  # left in a shell, no torchrun launch
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    store = RunStore(tmp_path, {"config": 1})
    assert store.finished() is None and store.lock.held
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from clviz.core.store import RunStore;"
            f"RunStore({str(tmp_path)!r}, {{'config': 2}}).finished()",
        ],
        env={**os.environ, "RANK": "1"},
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = holder.communicate(timeout=120)
    assert holder.returncode != 0 and FolderBusyError.__name__ in err
    store.release()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"LOCAL_RANK": "abc", "WORLD_SIZE": "2", "RANK": "0"}, "$LOCAL_RANK must be a whole"),
        ({"WORLD_SIZE": "2", "RANK": "5"}, "$RANK (5) must be below $WORLD_SIZE (2)"),
        ({"WORLD_SIZE": "-1"}, "$WORLD_SIZE must be a whole number"),
        ({"RANK": "x"}, "$RANK must be a whole number"),
    ],
)
def test_torchrun_variables_are_checked_with_a_clear_error(variables, message, capsys, monkeypatch):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("clviz.experiments.runs.load_stream", lambda *a: pytest.fail("worked"))
    assert main(RUN) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_a_results_variable_naming_a_file_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CLVIZ_RESULTS", str(tmp_path / "file"))
    assert main(RUN) == 2
    err = capsys.readouterr().err
    assert "$CLVIZ_RESULTS" in err and "is a file, not a folder" in err


# ---------------------------------------------------------------------- force
def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def cli(*args: str) -> tuple[int, str]:
    """``clviz *args`` in a fresh process (the world's splits are cached in memory per process)."""
    proc = subprocess.run(
        [sys.executable, "-m", "clviz", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return proc.returncode, proc.stderr


def test_force_rebuilds_a_damaged_shared_cache(tmp_path, store_root, monkeypatch):
    """A new run reads the shared caches (the world's drawn splits, the zero-shot row): a
    damaged one is named with --force, and --force rebuilds exactly that file (the run's
    matrix is the one an intact cache gives)."""
    monkeypatch.setenv("CLVIZ_WORLD_CACHE", str(tmp_path / "world"))
    argv = [*RUN[:-1], "1", "--out"]
    code, err = cli(*argv, str(tmp_path / "intact"))
    assert code == 0, err
    caches = {
        "world": sorted((tmp_path / "world").rglob("*.pt"))[0],
        "zero-shot": sorted((store_root / "_cache" / "zero-shot").glob("*.pt"))[0],
    }
    for kind, path in caches.items():
        corrupt(path)
        out = str(tmp_path / kind)
        code, err = cli(*argv, out)
        assert code == 2 and f"{path} is damaged" in err and "--force" in err, (kind, err)
        assert "Traceback" not in err
        assert cli(*argv, out, "--force")[0] == 0
        assert matrix(Path(out)) == matrix(tmp_path / "intact")
        read_sealed(path, role="cache", key=f"{path.parent.name}/{path.name}")  # sealed again


def test_force_rebuilds_a_damaged_file_of_a_finished_run(tmp_path, store_root, capsys):
    """What reads each file of a finished run (looking inside it, the drift measures, reuse)
    names it and --force; the same command with --force rebuilds it to the same matrix."""
    from clviz.analysis.drift.runs import records_of
    from clviz.experiments.runs import load_trained, run

    out = tmp_path / "out"
    config = make_config("embedded", "finetune", "smoke", 0, steps=1)
    readers = {
        "checkpoint.pt": lambda: load_trained(run(config, out, progress=False)),
        "features.pt": lambda: records_of({"finetune": run(config, out, progress=False)}),
        "results.json": lambda: run(config, out, progress=False),
    }
    argv = [*RUN[:-1], "1", "--out", str(out)]
    assert main(argv) == 0
    reference = matrix(out)
    for kind, read in readers.items():
        corrupt(out / kind)
        with pytest.raises(IntegrityError) as err:
            read()
        assert f"{out / kind} is damaged" in str(err.value) and "--force" in str(err.value)
        assert main([*argv, "--force"]) == 0, capsys.readouterr().err
        assert matrix(out) == reference, kind
        read()  # rebuilt and sealed again


# ---------------------------------------------------------------------- late validation
LATE = [  # (arguments, what the message says): each failed after training or drawing before
    (
        ["--method", "moe-adapters", "--options", '{"generic_images": 0}'],
        "moe-adapters option generic_images must be >= 1",
    ),
    (
        ["--method", "moe-adapters", "--options", '{"generic_folder": "/nowhere/generic"}'],
        "moe-adapters option generic_folder: /nowhere/generic does not exist",
    ),
    (
        ["--method", "zscl", "--options", '{"caption_file": "/nowhere/captions.txt"}'],
        "zscl option caption_file: /nowhere/captions.txt does not exist",
    ),
    (["--method", "moe-adapters", "--options", '{"experts": 1000000}'], "more than this machine's"),
    (
        ["--method", "zscl", "--options", '{"reference_images": 1000000000}'],
        "zscl option reference_images must be at most 1,000,000",
    ),
    (["--method", "finetune", "--seed", str(2**64)], "argument --seed: must be a whole number"),
]


@pytest.mark.parametrize(("args", "message"), LATE, ids=[m for _, m in LATE])
def test_what_can_be_checked_is_checked_before_any_work(
    args, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("clviz.experiments.runs.load_stream", lambda *a: pytest.fail("worked"))
    argv = ["run", "--stream", "smoke", "--steps", "2", "--out", str(tmp_path), *args]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusal of a flag
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_seed_change_against_a_partial_run_fails_before_any_work(tmp_path, capsys, monkeypatch):
    config = make_config("embedded", "finetune", "smoke", 0, steps=2)
    run_store(config, tmp_path).save_checkpoint({"rows": [[1.0]]})
    monkeypatch.setattr("clviz.experiments.runs.load_stream", lambda *a: pytest.fail("worked"))
    assert main([*RUN, "--seed", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "belongs to another run" in err and "seed: 0 there, 1 here" in err
