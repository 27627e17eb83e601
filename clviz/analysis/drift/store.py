"""Probe features of a run on disk: ``features.pt`` next to its ``results.json``.

The file holds the probe's metadata (task names, class names, which task and class each image
and text belongs to) and one snapshot per checkpoint: index 0 is the initial backbone, index t
the model after task t. It is written atomically when the run finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from clviz.analysis.drift.extract import Snapshot
from clviz.analysis.drift.probe import Probe
from clviz.core.integrity import read_sealed, write_sealed
from clviz.core.store import FEATURES
from clviz.errors import MissingFileError


@dataclass
class DriftRecord:
    """A run's probe features at every checkpoint, with what each row is."""

    tasks: list[str]
    classnames: list[list[str]]
    task_ids: torch.Tensor  # per probe image
    labels: torch.Tensor  # per probe image, class within its task
    text_task_ids: torch.Tensor  # per class text
    text_labels: torch.Tensor
    snapshots: list[Snapshot]

    @property
    def checkpoints(self) -> list[str]:
        """A label per snapshot: 'initial', then the task just learned."""
        return ["initial", *self.tasks[: len(self.snapshots) - 1]]


def record_from(probe: Probe, snapshots: list[Snapshot]) -> DriftRecord:
    return DriftRecord(
        probe.task_names,
        [list(t.classnames) for t in probe.tasks],
        probe.task_ids,
        probe.labels,
        probe.text_task_ids(),
        probe.text_labels(),
        snapshots,
    )


def save_record(path: str | Path, record: DriftRecord, key: str) -> None:
    """Write ``record`` atomically, sealed as the features of run ``key`` (its digest); the
    features are float16: they are for pictures and measures."""
    data = {
        "tasks": record.tasks,
        "classnames": record.classnames,
        "task_ids": record.task_ids,
        "labels": record.labels,
        "text_task_ids": record.text_task_ids,
        "text_labels": record.text_labels,
        "snapshots": [
            {side: {k: v.half() for k, v in feats.items()} for side, feats in s.as_dict().items()}
            for s in record.snapshots
        ],
    }
    write_sealed(path, data, role="features", key=key)


def load_snapshots(run_dir: str | Path, key: str | None = None) -> DriftRecord:
    """The probe features saved with the run in ``run_dir`` (of the run whose digest is
    ``key``, when given: a file copied from another run is refused); a clear error if there
    are none."""
    path = Path(run_dir) / FEATURES
    if not path.is_file():
        raise MissingFileError(
            f"no probe features at {path}: the run is unfinished, or was made by a clviz that "
            "did not record them; rerun it (clviz run ... --force) to record them"
        )
    fix = "rerun the same command with --force: the run is trained again to record them"
    d = read_sealed(path, role="features", key=key, fix=fix)[0]
    snaps = [
        Snapshot(
            {k: v.float() for k, v in s["image"].items()},
            {k: v.float() for k, v in s["text"].items()},
        )
        for s in d["snapshots"]
    ]
    return DriftRecord(
        d["tasks"],
        d["classnames"],
        d["task_ids"],
        d["labels"],
        d["text_task_ids"],
        d["text_labels"],
        snaps,
    )
