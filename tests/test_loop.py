"""The one loop: results, determinism, resume after an interruption, observers, the store."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from unittest import mock

import pytest
import torch

from clviz.core import Observer, RunStore, learn_task, run_stream
from clviz.core.config import RunConfig, TrainConfig
from clviz.core.loop import ObserverError
from clviz.core.store import RunDirError
from clviz.experiments.runs import run, run_store
from clviz.methods import build_method
from clviz.world import get_stream


def config(method: str = "finetune", **options) -> RunConfig:
    return RunConfig(
        method=method,
        stream="smoke",
        seed=3,
        train=TrainConfig(steps=4, batch_size=16),
        options=options,
    )


class crash_at(Observer):
    """Stops a run while task ``index`` finishes (before its checkpoint), as a kill would."""

    def __init__(self, index: int) -> None:
        self.index = index

    def on_task_end(self, method, index, row):
        if index == self.index:
            raise KeyboardInterrupt(f"simulated kill while task {index} finishes")


class Log(Observer):
    """Records every hook the loop calls, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_stream_start(self, method, tasks):
        self.calls.append(f"stream {len(tasks)}")

    def on_task_start(self, method, state):
        self.calls.append(f"start {state.index}")

    def on_task_trained(self, method, state):
        self.calls.append(f"trained {state.index}")

    def on_task_end(self, method, index, row):
        self.calls.append(f"end {index}")

    def on_stream_end(self, result, store):
        self.calls.append("done")


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ft")
    return out, run(config(), out, progress=False)


def test_results_have_the_documented_fields(finetune_run):
    out, result = finetune_run
    on_disk = json.loads((out / "results.json").read_text())
    assert result.run_dir == out
    assert on_disk["matrix"] == result.matrix
    # the identity: the whole config and the content of its inputs (weights, world version)
    assert on_disk["config_hash"] == run_store(replace(config(), device="cpu")).digest
    assert on_disk["config_hash"] != replace(config(), device="cpu").digest()
    assert result.tasks == ["shapes", "digits", "colors"] == result.columns
    assert len(result.matrix) == 3 and all(len(r) == 3 for r in result.matrix)
    assert set(on_disk["metrics"]) == {"transfer", "avg", "last", "bwt", "forgetting"}
    assert result.trainable_params == result.total_params - 1  # all but the logit scale
    assert [s.steps for s in result.task_stats] == [4, 4, 4]
    assert (out / "features.pt").is_file() and (out / "checkpoint.pt").is_file()


def test_same_seed_same_matrix_bit_for_bit(finetune_run, tmp_path):
    _, first = finetune_run
    second = run(config(), tmp_path, progress=False)
    assert second.matrix == first.matrix and second.task_stats == first.task_stats


def test_resume_after_interruption_gives_the_same_matrix(finetune_run, tmp_path):
    _, uninterrupted = finetune_run
    with pytest.raises(KeyboardInterrupt):
        run(config(), tmp_path, progress=False, observers=[crash_at(2)])
    assert (tmp_path / "checkpoint.pt").is_file() and not (tmp_path / "results.json").exists()
    log = Log()
    resumed = run(config(), tmp_path, progress=False, observers=[log])
    assert log.calls == ["start 2", "trained 2", "end 2", "done"], "only the third task again"
    assert resumed.matrix == uninterrupted.matrix
    assert resumed.zero_shot == uninterrupted.zero_shot


class Counter(Observer):
    """An observer that keeps state across an interruption: the tasks it saw end."""

    def __init__(self) -> None:
        self.seen = 0

    def on_task_end(self, method, index, row):
        self.seen += 1

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_observer_state_is_kept_by_name_and_a_late_one_is_refused(tmp_path):
    """A stateful observer resumes from its own entry; one added at the resume missed the
    first tasks and is refused by name; one left out is simply not read."""
    counter = Counter()
    with pytest.raises(KeyboardInterrupt):
        run(config(), tmp_path, progress=False, observers=[counter, crash_at(1)])
    with pytest.raises(ObserverError, match=r"observer 'Late' did not watch the first 1 task"):
        run(
            config(),
            tmp_path,
            progress=False,
            observers=[Counter(), type("Late", (Counter,), {})()],
        )
    resumed = Counter()
    run(config(), tmp_path, progress=False, observers=[resumed])  # crash_at left out
    assert resumed.seen == 3  # task 1 from the checkpoint, then tasks 2 and 3


def test_two_observers_under_one_name_are_refused(tmp_path):
    with pytest.raises(ObserverError, match="two observers share a name"):
        run(config(), tmp_path, progress=False, observers=[Counter(), Counter()])


def test_finished_results_are_reused(finetune_run):
    out, result = finetune_run
    log = Log()
    again = run(config(), out, progress=False, observers=[log])
    assert log.calls == [] and again == result


def test_another_configs_folder_is_never_overwritten(finetune_run):
    out, result = finetune_run
    with pytest.raises(RunDirError, match="another run"):
        run(config("wise-ft"), out, progress=False)
    assert json.loads((out / "results.json").read_text())["matrix"] == result.matrix


def test_default_folders_name_every_setting(tmp_path):
    a = run(config("zero-shot"), root=tmp_path, progress=False)
    other = config("zero-shot")
    other.train.steps = 5
    b = run(other, root=tmp_path, progress=False)
    assert a.run_dir != b.run_dir and a.run_dir.name.startswith("zero-shot_smoke_seed3_")


def test_zero_shot_rows_equal_the_backbone(tmp_path):
    result = run(config("zero-shot"), tmp_path, progress=False)
    for row in result.matrix:
        assert row == pytest.approx(result.zero_shot)
    assert result.trainable_params == 0
    assert result.metrics.forgetting == pytest.approx(0)


def test_run_stream_works_without_a_store_and_calls_observers_in_order(make_method):
    tasks = get_stream("smoke")[:2]
    log = Log()
    result = run_stream(make_method("finetune", steps=1), tasks, observers=[log], progress=False)
    assert log.calls == [
        "stream 2",
        "start 0",
        "trained 0",
        "end 0",
        "start 1",
        "trained 1",
        "end 1",
        "done",
    ]
    assert result.run_dir is None and len(result.zero_shot) == 2
    assert result.method == "finetune" and result.protocol == "task-incremental"


def test_learn_task_is_seeded_by_its_seed_alone(make_method, small_task):
    a, b = make_method("finetune"), make_method("finetune")
    assert learn_task(a, small_task, seed=7, progress=False) == learn_task(
        b, small_task, seed=7, progress=False
    )
    c = make_method("finetune")
    assert learn_task(c, small_task, seed=8, progress=False) != learn_task(
        make_method("finetune"), small_task, seed=7, progress=False
    )


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    store = RunStore(tmp_path, {"a": 1})
    store.save_checkpoint({"rows": []})
    with pytest.raises(RunDirError, match="belongs to another run"):
        RunStore(tmp_path, {"a": 2}).checkpoint()
    assert RunStore(tmp_path, {"a": 2}, force=True).checkpoint() is None
    assert RunStore(tmp_path, {"a": 1}).checkpoint()["rows"] == []


def test_schedules_match_the_references_on_hand_computed_steps():
    from clviz.core.schedules import lr_factor, warmup_steps

    cosine = lr_factor("cosine", steps=10, warmup=2)  # ZSCL's utils.cosine_lr
    assert [cosine(0), cosine(1)] == [0.5, 1.0]  # (step + 1) / warmup
    assert cosine(2) == 1.0 and cosine(6) == pytest.approx(0.5)  # half-way through the decay
    linear = lr_factor("linear", steps=10, warmup=warmup_steps(10, warmup_ratio=0.1))  # ATLAS
    assert [linear(0), linear(1), linear(5), linear(9)] == [
        0.0,
        1.0,
        pytest.approx(5 / 9),
        pytest.approx(1 / 9),
    ]
    assert lr_factor("constant", 10, 0)(7) == 1.0
    with pytest.raises(ValueError, match="valid schedules: constant, cosine, linear"):
        TrainConfig(schedule="step")


def test_the_optimiser_follows_the_schedule_and_per_task_rates(tiny, small_task):
    seen = []

    class Spy(Observer):
        def on_task_start(self, method, state):
            real = torch.optim.AdamW.step

            def step(opt, *args, **kwargs):
                seen.append(opt.param_groups[0]["lr"])
                return real(opt, *args, **kwargs)

            self.patch = mock.patch.object(torch.optim.AdamW, "step", step)
            self.patch.start()

        def on_task_trained(self, method, state):
            self.patch.stop()

    model, _, tokenizer = tiny
    train = TrainConfig(
        steps=4, batch_size=8, schedule="cosine", warmup_steps=2, task_lr={"shapes": 1e-3}
    )
    method = build_method("finetune", copy.deepcopy(model), tokenizer, train)
    learn_task(method, small_task, observers=[Spy()], progress=False)
    assert seen == pytest.approx([5e-4, 1e-3, 1e-3, 5e-4])  # warm-up, then cos over 2 steps


def test_training_sees_one_prompt_per_class_and_evaluation_every_template(fmt, small_task):
    task = fmt(small_task)
    per_class = len(small_task.templates)
    assert per_class > 1 and len(task.prompt_tokens) == task.num_classes * per_class
    first = task.for_training("first")
    assert len(first.prompt_tokens) == task.num_classes
    torch.testing.assert_close(first.prompt_tokens, task.prompt_tokens[::per_class])
    assert task.for_training("ensemble") is task
    with pytest.raises(ValueError, match="valid: first, ensemble"):
        TrainConfig(prompts="all")
