"""Rehearsal baselines: replay stored images of earlier tasks, up to keeping them all.

- ``replay`` keeps ``memory_per_class`` training images of every class of every learned task
  (a seeded draw) and, at each step, adds the shared loss on a batch drawn from that memory,
  each image against its own task's class prompts. The classic experience-replay baseline of
  continual learning (Chaudhry et al. 2019, "On tiny episodic memories"), for a class to set
  beside the methods that keep no data.
- ``joint`` keeps every training image of every learned task: each task is learned together
  with everything before it, the usual upper bound of what a sequential learner could reach
  with unlimited memory (its matrix's last row is joint training on the whole stream).

Our choices where the literature varies: the replay batch is the training batch's size, drawn
uniformly over the stored images (so older tasks are not favoured), and its loss is averaged
with the current batch's at equal weight. The memory is part of every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from clviz.core.clip import class_embeddings, embed_images
from clviz.core.formats import Batch, ClassificationFormat, TaskFormat
from clviz.core.method import Method, TaskState
from clviz.core.validation import AT_LEAST_ONE, bounded
from clviz.errors import InputError
from clviz.methods.registry import register_method


@dataclass
class ReplayOptions:
    # training images kept per class of every learned task
    memory_per_class: int = bounded(20, AT_LEAST_ONE, count=True)
    # images replayed per step (None: the training batch)
    replay_batch: int | None = bounded(None, AT_LEAST_ONE, count=True)


@dataclass
class Memory:
    """Stored images of one learned task, with its class prompts (one per class)."""

    name: str
    images: torch.Tensor  # uint8, N x 3 x H x W
    labels: torch.Tensor
    tokens: torch.Tensor  # one training prompt per class
    num_classes: int


MAX_MEMORY_BYTES = (
    2**31
)  # what a memory may hold in RAM (joint training on real data would not fit)


def _stored(images, keep: torch.Tensor) -> torch.Tensor:
    """The kept images as a uint8 tensor in memory (read from disk for a real dataset)."""
    shape = images.shape
    size = len(keep) * int(torch.tensor(shape[1:]).prod())
    if size > MAX_MEMORY_BYTES:
        raise InputError(
            f"keeping {len(keep)} images of {tuple(shape[1:])} takes {size / 2**30:.1f} GB, more "
            f"than the {MAX_MEMORY_BYTES / 2**30:.0f} GB a replay memory may hold: use replay "
            "with a smaller memory_per_class (joint keeps every image)"
        )
    if isinstance(images, torch.Tensor):
        return images[keep].clone()
    return images.take(keep).materialize()


@register_method
class Replay(Method):
    name = "replay"
    listing_order = 5
    formats = (ClassificationFormat,)
    summary = "replays a small memory of earlier tasks' images in every step"
    Options = ReplayOptions
    relative_cost = 2.4  # measured: 245 s against fine-tuning's 102 s on the default stream
    keep_all = False  # joint: keep every image

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.memory: list[Memory] = []

    def begin_task(self, task: TaskFormat, index: int, draws: torch.Generator) -> TaskState:
        return TaskState(task, index, draws)

    def loss(self, batch: Batch, state: TaskState) -> torch.Tensor:
        loss = self.task_loss(batch, state.task)
        if not self.memory:
            return loss
        sizes = torch.tensor([len(m.labels) for m in self.memory])
        size = self.options.replay_batch or self.train_config.batch_size
        picks = torch.randint(int(sizes.sum()), (size,), generator=state.draws)
        starts = torch.cumsum(sizes, 0) - sizes
        which = torch.bucketize(picks, torch.cumsum(sizes, 0), right=True)
        replayed = loss.new_zeros(())
        for t in which.unique().tolist():
            memory, rows = self.memory[t], picks[which == t] - starts[t]
            image = embed_images(self.model, memory.images[rows].to(self.device))
            text = class_embeddings(self.model, memory.tokens, memory.num_classes)
            replayed = replayed + len(rows) * self.classification_loss(
                image, text, memory.labels[rows]
            )
        return (loss + replayed / size) / 2

    def end_task(self, state: TaskState) -> None:
        task = state.task
        images, labels = task.images("train"), task.train_labels
        keep = []
        for c in range(task.num_classes):
            rows = torch.nonzero(labels == c).flatten()
            rows = rows[torch.randperm(len(rows), generator=state.draws)]
            keep.append(rows if self.keep_all else rows[: self.options.memory_per_class])
        keep = torch.cat(keep).sort().values
        self.memory.append(
            Memory(task.name, _stored(images, keep), labels[keep].clone(), task.prompt_tokens,
                   task.num_classes)
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "memory": [vars(m) for m in self.memory]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.memory = [Memory(**m) for m in state["memory"]]


@register_method
class Joint(Replay):
    """Every image of every learned task replayed: joint training, task after task."""

    name = "joint"
    listing_order = 6
    summary = "replays every earlier task's images: the joint-training upper bound"
    relative_cost = 2.4
    keep_all = True
