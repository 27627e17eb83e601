"""The untouched backbone on a stream, computed once and shared by every run of that stream.

Every run starts by evaluating the backbone before any training (the zero-shot row) and taking
the probe's features (checkpoint 0 of the drift pictures). Both depend only on the weights, the
tasks and the evaluation batch size, not on the method, so they are cached under
``<results root>/_initial/`` keyed by a hash of exactly those: a run of the nine methods computes
them once instead of nine times, and a rebuilt weights file gets a fresh entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from clviz.drift.extract import Snapshot, extract_snapshot
from clviz.drift.probe import Probe
from clviz.io import atomic_path
from clviz.world.tasks import Task


def weights_digest(model: nn.Module) -> str:
    """A hash of every tensor of ``model``'s state (names, shapes and values)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _task_digest(tasks: Sequence[Task], probe: Probe) -> str:
    h = hashlib.sha256()
    for t in tasks:
        h.update(t.name.encode())
        h.update(repr((t.classnames, t.templates, len(t.test_labels))).encode())
        h.update(t.test_labels.numpy().tobytes())
    h.update(probe.images.numpy().tobytes())
    return h.hexdigest()


def initial_evaluation(
    untouched,
    tasks: Sequence[Task],
    probe: Probe,
    accuracy: Callable[[object, Task], float],
    cache_dir: str | Path | None,
) -> tuple[list[float], Snapshot]:
    """(zero-shot accuracy per task, probe snapshot) of the untouched ``Method``; cached."""
    key = hashlib.sha256(
        f"{weights_digest(untouched.model)}|{_task_digest(tasks, probe)}".encode()
    ).hexdigest()[:20]
    path = Path(cache_dir) / f"{key}.pt" if cache_dir is not None else None
    if path is not None and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["zero_shot"], Snapshot.from_dict(saved["snapshot"])
    row = [accuracy(untouched, t) for t in tasks]
    snapshot = extract_snapshot(untouched, probe)
    if path is not None:
        with atomic_path(path) as tmp:
            torch.save({"zero_shot": row, "snapshot": snapshot.as_dict()}, tmp)
    return row, snapshot
