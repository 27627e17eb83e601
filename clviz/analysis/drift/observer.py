"""The drift probe as an observer of a run: its features before the first task and after each.

:class:`DriftObserver` watches :func:`clviz.core.loop.run_stream`: it takes the probe's
features from the method before any training (checkpoint 0: every method starts as its
backbone) and after every task, keeps them in each checkpoint so an interrupted run resumes
with them, and saves them as ``features.pt`` beside ``results.json`` when the run ends.
Features are far smaller than the model checkpoints they stand for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clviz.analysis.drift.extract import Snapshot, extract_snapshot
from clviz.analysis.drift.probe import Probe
from clviz.analysis.drift.store import FEATURES, record_from, save_record
from clviz.core.formats import TaskFormat
from clviz.core.loop import Observer


class DriftObserver(Observer):
    """Probe snapshots at every checkpoint of a run; ``features.pt`` in its store at the end."""

    name = "drift"

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.snapshots: list[Snapshot] = []

    def on_stream_start(self, method, tasks: Sequence[TaskFormat]) -> None:
        self.snapshots = [extract_snapshot(method, self.probe)]

    def on_task_end(self, method, index: int, row: list[float]) -> None:
        self.snapshots.append(extract_snapshot(method, self.probe))

    def on_stream_end(self, result, store) -> None:
        if store is not None:
            record = record_from(self.probe, self.snapshots)
            save_record(store.path(FEATURES), record, store.digest)

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": [s.as_dict() for s in self.snapshots]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = [Snapshot.from_dict(d) for d in state["snapshots"]]
