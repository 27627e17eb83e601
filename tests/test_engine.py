"""The engine: accuracy matrix, determinism, resume after an interruption, cached results."""

from __future__ import annotations

import json

import pytest

from clviz.config import RunConfig
from clviz.engine import RunDirError, run
from clviz.methods import TrainConfig


def config(method: str = "finetune", **options) -> RunConfig:
    return RunConfig(
        method=method,
        stream="smoke",
        seed=3,
        train=TrainConfig(steps=4, batch_size=16),
        options=options,
    )


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ft")
    return out, run(config(), out, progress=False)


def test_results_have_the_documented_fields(finetune_run):
    out, results = finetune_run
    on_disk = json.loads((out / "results.json").read_text())
    assert {**on_disk, "run_dir": str(out)} == results  # run() adds where the run lives
    for key in (
        "method",
        "stream",
        "seed",
        "tasks",
        "accuracy_matrix",
        "zero_shot",
        "metrics",
        "trainable_params",
        "total_params",
        "seconds",
        "config",
    ):
        assert key in results
    assert results["tasks"] == ["shapes", "digits", "colors"]
    assert len(results["accuracy_matrix"]) == 3 and all(
        len(r) == 3 for r in results["accuracy_matrix"]
    )
    assert set(results["metrics"]) == {"transfer", "avg", "last", "bwt", "forgetting"}
    assert results["trainable_params"] == results["total_params"] - 1  # all but the logit scale


def test_same_seed_same_matrix_bit_for_bit(finetune_run, tmp_path):
    _, first = finetune_run
    second = run(config(), tmp_path, progress=False)
    assert second["accuracy_matrix"] == first["accuracy_matrix"]


def test_resume_after_interruption_gives_the_same_matrix(finetune_run, tmp_path):
    _, uninterrupted = finetune_run

    def crash_after_second_task(index, row):
        if index == 1:
            raise KeyboardInterrupt("simulated kill after task 2")

    with pytest.raises(KeyboardInterrupt):
        run(config(), tmp_path, progress=False, on_task_end=crash_after_second_task)
    assert (tmp_path / "checkpoint.pt").is_file() and not (tmp_path / "results.json").exists()
    finished = []
    resumed = run(config(), tmp_path, progress=False, on_task_end=lambda i, r: finished.append(i))
    assert finished == [2], "only the third task is trained again"
    assert resumed["accuracy_matrix"] == uninterrupted["accuracy_matrix"]


def test_finished_results_are_reused(finetune_run):
    out, results = finetune_run
    again = run(config(), out, progress=False, on_task_end=lambda i, r: pytest.fail("retrained"))
    assert again == results


def test_another_configs_folder_is_never_overwritten(finetune_run):
    out, results = finetune_run
    with pytest.raises(RunDirError, match="another config"):
        run(config("wise-ft"), out, progress=False)
    assert {**json.loads((out / "results.json").read_text()), "run_dir": str(out)} == results


def test_zero_shot_rows_equal_the_backbone(tmp_path):
    results = run(config("zero-shot"), tmp_path, progress=False)
    for row in results["accuracy_matrix"]:
        assert row == pytest.approx(results["zero_shot"])
    assert results["trainable_params"] == 0
    assert results["metrics"]["forgetting"] == pytest.approx(0)
