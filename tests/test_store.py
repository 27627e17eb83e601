"""The run store, typed results and the content-addressed cache."""

from __future__ import annotations

import json

import pytest
import torch

from clviz.core import RunResult, RunStore
from clviz.core.result import ResultError, StageStats, TaskStats
from clviz.core.store import RunDirError, memo
from clviz.methods.atlas import AlphaRecord
from clviz.methods.moe import DDASRecord, DDASReport, RoutingRecord
from clviz.methods.mulki import MulKIRecord, MulKITaskRecord, TeacherWeightSummary


def result(record=None, **fields) -> RunResult:
    return RunResult(
        method="finetune",
        tasks=["a", "b"],
        matrix=[[80.0, 30.0], [50.0, 90.0]],
        zero_shot=[40.0, 35.0],
        task_stats=[TaskStats([StageStats("train", 3, 2.0, 1.5)]), TaskStats()],
        record=record,
        **fields,
    )


MOE = RoutingRecord([{"l": [1, 2]}], [{"l": [1]}])
REPORT = DDASReport({"a": [0.1]}, [[1, 0]], {"a": 100.0}, ["a"], 0.5)
WEIGHTS = TeacherWeightSummary(16, 0.5, [0.5] * 5, [0] * 10)
RECORDS = [
    None,
    MOE,
    DDASRecord(MOE.selections, MOE.frozen_history, {"per_sample": REPORT}),
    AlphaRecord(
        ["a"], ["a"], {"a": [2]}, {"s": ["image", 0, "attn"]}, {"a": {"s": [0.5]}}, {"a": 0.0}
    ),
    MulKIRecord(10, [MulKITaskRecord("a", 0, 0.1, 0.2, 0.3, teacher_weights=WEIGHTS)]),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.kind if r else "none")
def test_results_round_trip_with_their_typed_record(record, tmp_path):
    r = result(record)
    r.save(tmp_path / "results.json")
    back = RunResult.load(tmp_path / "results.json")
    assert back.run_dir == tmp_path
    back.run_dir = None
    assert back == r and type(back.record) is type(record)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["metrics"]["transfer"] == 30.0 and "run_dir" not in data


def test_metrics_follow_the_protocol():
    ti = result()
    assert ti.metrics.transfer == 30.0 and ti.metrics.last == 70.0
    ci = result(protocol="class-incremental")
    ci.matrix = [[80.0], [60.0]]
    assert (ci.metrics.avg, ci.metrics.last) == (70.0, 60.0)
    assert ci.zero_shot_metrics.last == 35.0
    assert result().task_stats[0].final_loss == 1.5 and result().task_stats[1].steps == 0


def test_damaged_files_name_themselves_and_the_fix_and_force_rebuilds(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    (tmp_path / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.raises(ResultError, match=r"results.json .*--force"):
        RunStore(tmp_path, {"x": 1}).finished()
    with pytest.raises(ResultError, match=r"checkpoint.pt .*--force"):
        RunStore(tmp_path, {"x": 1}).checkpoint()
    forced = RunStore(tmp_path, {"x": 1}, force=True)
    assert forced.finished() is None and forced.checkpoint() is None


def test_store_reuses_refuses_and_replaces(tmp_path):
    store = RunStore(tmp_path, {"config": 1})
    assert store.finished() is None
    saved = store.save(result())
    assert saved.config_hash == store.digest and store.finished() == saved
    with pytest.raises(RunDirError, match="another run"):
        RunStore(tmp_path, {"config": 2}).finished()
    assert RunStore(tmp_path, {"config": 2}, force=True).finished() is None


def test_named_folders_carry_the_identity(tmp_path):
    a = RunStore.named("run", {"x": 1}, group="g", root=tmp_path)
    b = RunStore.named("run", {"x": 2}, group="g", root=tmp_path)
    assert a.folder.parent == tmp_path / "g" and a.folder != b.folder
    assert a.folder.name == f"run_{a.digest[:8]}"


def test_memo_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(3)

    first = memo(tmp_path / "k.pt", compute)
    again = memo(tmp_path / "k.pt", compute)
    assert torch.equal(first, again) and len(calls) == 1
