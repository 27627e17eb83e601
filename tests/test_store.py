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


def test_a_folder_held_by_another_process_is_refused_at_once(tmp_path):
    import subprocess
    import sys
    import time

    from clviz.core.lock import FolderBusyError

    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, filelock; l = filelock.FileLock(sys.argv[1], timeout=0); "
            "l.acquire(); print('held', flush=True); time.sleep(60)",
            str(folder / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        folder.mkdir()
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        with pytest.raises(
            FolderBusyError, match=f"another clviz run holds the run folder {folder}"
        ):
            RunStore(folder, {"x": 1}).finished()
        assert time.perf_counter() - started < 5  # at once, not after a wait
    finally:
        holder.kill()
        holder.wait()
    store = RunStore(folder, {"x": 1})
    assert store.finished() is None and store.lock.held  # free again once its holder died
    store.release()


def test_the_final_write_checks_the_folder_again(tmp_path):
    mine = RunStore(tmp_path, {"steps": 5})
    assert mine.finished() is None
    RunStore(tmp_path, {"steps": 20}).save(result())  # written behind its back (same process)
    with pytest.raises(RunDirError, match=r"steps: 20 there, 5 here"):
        mine.save(result())
    assert RunStore(tmp_path, {"steps": 20}).finished() is not None  # nothing was lost


def test_a_clash_names_the_settings_that_differ(tmp_path):
    a = {"method": "finetune", "train": {"steps": 5, "lr": 1e-4}}
    RunStore(tmp_path, a).save(result())
    b = {"method": "finetune", "train": {"steps": 20, "lr": 1e-4}}
    with pytest.raises(RunDirError, match=r"\(train\.steps: 5 there, 20 here\)"):
        RunStore(tmp_path, b).finished()


def test_checkpoints_are_sealed_and_count_their_tasks(tmp_path):
    from clviz.core.integrity import read_header
    from clviz.core.store import resume_hint

    store = RunStore(tmp_path, {"x": 1})
    assert store.finished() is None
    store.save_checkpoint({"rows": [[1.0], [2.0]]})
    header = read_header(tmp_path / "checkpoint.pt")
    assert header["identity"] == store.digest and header["tasks_done"] == 2
    assert store.tasks_done() == 2 and "resume from task 3" in resume_hint()
    store.release()


def test_stale_temporary_files_go_when_the_folder_is_taken(tmp_path, dead_pid):
    stale = tmp_path / f".checkpoint.pt.clviz-{dead_pid}-k1ll3d.tmp"
    stale.write_bytes(b"")
    store = RunStore(tmp_path, {"x": 1})
    assert store.finished() is None and not stale.exists()
    store.release()


def test_an_older_unsealed_cache_is_rebuilt_and_sealed(tmp_path):
    from clviz.core.integrity import MAGIC

    path = tmp_path / "k.pt"
    torch.save(torch.zeros(2), path)  # what clviz wrote before caches were sealed
    assert torch.equal(memo(path, lambda: torch.ones(2)), torch.ones(2))
    assert path.read_bytes().startswith(MAGIC)
