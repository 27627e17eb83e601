"""What a run measures after each task: an :class:`Evaluation` gives the row of the matrix.

- :class:`EveryTask` (task-incremental, MTIL): every task of the stream, learned or not, each
  classified among its own classes: row t of the T x T accuracy matrix.
- :class:`SeenClasses` (class-incremental): one task made of all classes seen so far, each
  image classified among all of them: one number per step.

Each also evaluates the untouched backbone the same way (``reference``: the zero-shot row), and
names the protocol whose metrics apply (:func:`clviz.core.metrics.metrics_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from clviz.core import distributed
from clviz.core.device import autocast
from clviz.core.formats import TaskFormat

if TYPE_CHECKING:
    from clviz.core.method import Method


@torch.no_grad()
def accuracy(method: Method, task: TaskFormat, batch_size: int = 256) -> float:
    """Top-1 accuracy (percent) of ``method`` on ``task``'s test split.

    Under torchrun each process scores its share of the batches and the counts are summed,
    so every process returns the same number. Counting stays on the device until the end.
    """
    device = method.device
    with autocast(device):
        predict = method.predictor(task)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for batch in task.batches("test", batch_size, device, shard=True):
            correct += (predict(batch).argmax(-1) == batch.labels).sum()
    return 100.0 * distributed.all_reduce_sum(correct).item() / task.size("test")


class Evaluation(Protocol):
    """The measurement taken after each task of a run."""

    protocol: str  # "task-incremental" | "class-incremental"
    columns: list[str]  # what each entry of a row measures

    def row(self, method: Method, index: int) -> list[float]:
        """The entries after learning the ``index``-th task."""
        ...

    def reference(self, untouched: Method) -> list[float | None]:
        """The untouched backbone measured the same way."""
        ...


class EveryTask:
    """Accuracy on every task of the stream after each task (task-incremental, MTIL)."""

    protocol = "task-incremental"

    def __init__(self, tasks: Sequence[TaskFormat], batch_size: int = 256):
        self.tasks, self.batch_size = list(tasks), batch_size
        self.columns = [t.name for t in self.tasks]

    def row(self, method: Method, index: int) -> list[float]:
        return [accuracy(method, t, self.batch_size) for t in self.tasks]

    def reference(self, untouched: Method) -> list[float | None]:
        """Zero-shot accuracy per task; None for a task whose head must be trained first."""
        return [
            None if t.make_head() is not None else accuracy(untouched, t, self.batch_size)
            for t in self.tasks
        ]


class SeenClasses:
    """After step t, accuracy over the union of the classes of steps 1..t (class-incremental).

    ``seen[t]`` is the task whose classes are everything seen after step t.
    """

    protocol = "class-incremental"

    def __init__(self, seen: Sequence[TaskFormat], batch_size: int = 256):
        self.seen, self.batch_size = list(seen), batch_size
        self.columns = ["all classes seen so far"]

    def row(self, method: Method, index: int) -> list[float]:
        return [accuracy(method, self.seen[index], self.batch_size)]

    def reference(self, untouched: Method) -> list[float | None]:
        """The untouched backbone after every step (one number per step)."""
        return [accuracy(untouched, t, self.batch_size) for t in self.seen]
