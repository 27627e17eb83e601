"""Methods trained side by side in worker processes give the sequential one-thread matrices
and show every step live; a failing worker names its method and log and keeps the runs that
finished."""

from __future__ import annotations

import pytest
import torch

from clviz.core.config import RunConfig, TrainConfig
from clviz.experiments import workers
from clviz.experiments.compare import compare, comparison_configs, is_finished
from clviz.experiments.runs import run
from clviz.experiments.workers import WorkerError, train_in_workers

METHODS = ["finetune", "moe-adapters-taskid"]


def test_two_workers_give_the_one_thread_sequential_matrices(tmp_path, monkeypatch):
    shown = []  # every position the parent drew on a run's live bar
    real_show = workers.RunBars.show
    monkeypatch.setattr(
        workers.RunBars,
        "show",
        lambda self, received: shown.extend(received) or real_show(self, received),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = compare(METHODS, "smoke", steps=2, root=tmp_path / "seq", progress=False)
    finally:
        torch.set_num_threads(threads)
    both = compare(
        METHODS, "smoke", steps=2, root=tmp_path / "par", progress=False, workers=2,
        logs=tmp_path / "logs",
    )  # fmt: skip
    for name in METHODS:
        assert both[name].matrix == alone[name].matrix, name
        assert (tmp_path / "logs" / f"{name}.log").read_text().count("finished in") == 1
        seen = [p for label, p in shown if label == name]  # the parent saw each task's last step
        ends = [(p.task, p.step) for p in seen if p.steps and p.step == p.steps]
        assert sorted(set(ends)) == [(t, 2) for t in range(3)], (name, seen)
        assert seen[-1].describe() == "task 3/3 " + seen[-1].task_name + " · step 2/2"


def test_a_failing_worker_names_its_method_and_keeps_finished_runs(tmp_path):
    good = comparison_configs(["finetune"], "smoke", steps=1)[0]
    bad = RunConfig("zero-shot", stream="mtil:MNIST", data_root=str(tmp_path / "no-such-data"))
    bad.train = TrainConfig(steps=1)
    with pytest.raises(WorkerError, match=r"zero-shot failed: .*its log: .*zero-shot\.log"):
        train_in_workers([good, bad], 2, tmp_path / "logs", root=tmp_path / "runs")
    assert is_finished(good, tmp_path / "runs")  # the other worker's run is kept
    assert run(good, root=tmp_path / "runs", progress=False).matrix  # and reused
