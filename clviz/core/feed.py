"""Feeding batches to the model: in memory for the embedded world, a DataLoader for real data.

The loop decides *which* examples make each batch (seeded index draws); this module decides
*how* they arrive. A task whose images sit in memory (the embedded world, few-shot subsets) is
indexed directly: no copy, no process. A task whose images are read from disk
(:class:`~clviz.data.lazy.LazyImages`) is decoded by a torch ``DataLoader`` with worker
processes, a couple of batches ahead, into pinned memory when the model is on a GPU, and copied
with ``non_blocking=True``. Which examples are decoded never depends on the workers, so a run
repeats exactly whatever ``$CLVIZ_WORKERS`` says. An image that cannot be read inside a worker
is the same one-line :class:`~clviz.errors.ImageReadError` as without workers (torch's
re-raised copy carries the worker's whole traceback in its message; only our line is kept).
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset

from clviz.errors import ImageReadError, InputError

if TYPE_CHECKING:
    from clviz.core.formats import Batch, TaskFormat

Index = slice | torch.Tensor
WORKERS_VAR = "CLVIZ_WORKERS"
_WORKER_ERROR = re.compile(r"Caught ImageReadError in DataLoader worker process \d+")


def loader_workers() -> int:
    """Decoding processes for real datasets: ``$CLVIZ_WORKERS``, else up to 4 (one per core)."""
    value = os.environ.get(WORKERS_VAR)
    if value is None:
        return min(4, os.cpu_count() or 1)
    try:
        workers = int(value)
    except ValueError:
        workers = -1
    if workers < 0:
        raise InputError(f"{WORKERS_VAR} must be a whole number >= 0, got {value!r}")
    return workers


def is_lazy(images: object) -> bool:
    """Whether ``images`` are read from disk on demand (not a tensor in memory)."""
    return images is not None and not isinstance(images, torch.Tensor)


class _IndexedBatches(Dataset):
    """Item ``i`` is the ``i``-th batch of ``split`` (what a DataLoader worker decodes)."""

    def __init__(self, task: TaskFormat, split: str, indices: Sequence[Index]):
        self.task, self.split, self.indices = task, split, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Batch:
        return self.task.batch(self.split, self.indices[i])


def feed(
    task: TaskFormat,
    split: str,
    indices: Sequence[Index],
    device: torch.device | None = None,
) -> Iterator[Batch]:
    """The batches ``task.batch(split, i)`` for each ``i`` of ``indices``, in order, on
    ``device`` (left where they are when None)."""
    device = device or torch.device("cpu")
    workers = loader_workers() if is_lazy(task.images(split)) else 0
    if workers == 0:
        for index in indices:
            yield task.batch(split, index).to(device)
        return
    loader = DataLoader(
        _IndexedBatches(task, split, indices),
        batch_size=None,  # items are whole batches already
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=2,
    )
    batches = iter(loader)
    while True:
        message = None
        try:
            batch = next(batches)
        except StopIteration:
            return
        except ImageReadError as err:
            message = _worker_message(err)
            if message is None:
                raise
            traceback.clear_frames(err.__traceback__)  # its frames hold the workers' iterator
        if message is not None:
            del batches, loader  # the workers stop now, not when the error is collected
            raise ImageReadError(message) from None
        yield batch.to(device)


def _worker_message(err: ImageReadError) -> str | None:
    """Our one-line message inside torch's re-raised copy of a worker's ImageReadError (which
    reads ``Caught ImageReadError in DataLoader worker process N. Original Traceback ...
    ImageReadError: <our message>``); None when ``err`` is not such a copy."""
    text, marker = str(err), "ImageReadError: "
    if not _WORKER_ERROR.match(text) or marker not in text:
        return None
    return text.rsplit(marker, 1)[1].strip().splitlines()[0]
