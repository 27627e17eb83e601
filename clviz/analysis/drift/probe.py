"""The probe set: a fixed, small sample of every task's test images, and every class text.

Every checkpoint of a run is looked at through the same probe, so any change in its features is
a change of the model, never of the data. Images come from the test split (never trained on),
the first ``per_class`` of each class (or all of a class's, where it has fewer), so the probe is
the same for every method and seed run on the same world.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from clviz.core.formats import ClassificationFormat
from clviz.errors import InputError

DEFAULT_PER_CLASS = 6


@dataclass(frozen=True, eq=False)
class Probe:
    """Probe images (uint8, grouped by task) with their task and class indices."""

    tasks: tuple[ClassificationFormat, ...] = field(repr=False)
    images: torch.Tensor = field(repr=False)  # N x 3 x H x W uint8, task-major
    task_ids: torch.Tensor = field(repr=False)  # N, index into ``tasks``
    labels: torch.Tensor = field(repr=False)  # N, class index within its task

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def of_task(self, index: int) -> torch.Tensor:
        """Indices of the probe images of task ``index``."""
        return torch.nonzero(self.task_ids == index).flatten()

    def text_task_ids(self) -> torch.Tensor:
        """Task index of each class text, in the order the texts are extracted (task-major)."""
        return torch.cat(
            [torch.full((t.num_classes,), i, dtype=torch.long) for i, t in enumerate(self.tasks)]
        )

    def text_labels(self) -> torch.Tensor:
        """Class index (within its task) of each class text."""
        return torch.cat([torch.arange(t.num_classes) for t in self.tasks])

    def __len__(self) -> int:
        return len(self.labels)


def make_probe(tasks: Sequence[ClassificationFormat], per_class: int = DEFAULT_PER_CLASS) -> Probe:
    """The first ``per_class`` test images of each class of every task (all of them where a
    class has fewer, as small real test splits do)."""
    if per_class < 2:
        raise InputError(f"per_class must be at least 2 (k-NN needs neighbours), got {per_class}")
    images, task_ids, labels = [], [], []
    for i, task in enumerate(tasks):
        chosen = [
            torch.nonzero(task.test_labels == c).flatten()[:per_class]
            for c in range(task.num_classes)
        ]
        idx = torch.cat(chosen)
        if len(idx) < 2:
            raise InputError(
                f"task {task.name!r} has {len(idx)} test image(s); the probe needs at least 2"
            )
        images.append(task.images("test")[idx])
        task_ids.append(torch.full((len(idx),), i, dtype=torch.long))
        labels.append(task.test_labels[idx])
    return Probe(tuple(tasks), torch.cat(images), torch.cat(task_ids), torch.cat(labels))
