"""A close look at one MulKI task for notebook 06: what each stage computes, on real batches.

:func:`walk_through` runs MulKI on two tasks through the one loop (so the previous-task teacher
of the second differs from the pretrained one) with a :class:`WalkThrough` observer that keeps,
for the second task, what the figures show: the prototype-to-text similarity matrix before and
after training, one test image's relation distributions under both teachers and the student,
and the per-sample teacher weights of every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from clviz.backbone import load_backbone
from clviz.core.clip import class_embeddings, embed_images
from clviz.core.config import TrainConfig
from clviz.core.formats import make_format
from clviz.core.loop import Observer, run_stream
from clviz.core.result import TaskStats
from clviz.core.task import Task
from clviz.methods import build_method
from clviz.methods.mulki import MulKI, MulKIState, MulKITaskRecord
from clviz.methods.mulki.losses import relation_distribution, relation_logits


@dataclass
class Relations:
    """One image's similarity distributions over the prototypes (intra-modal) and the class
    texts (inter-modal), and the model's confidence in the true class."""

    intra: list[float]
    inter: list[float]
    confidence: float


@dataclass
class Moment:
    """The task at one moment: prototype-to-text cosines (C x C), and the watched image's
    relations under each model ("pretrained teacher", "previous teacher", "student")."""

    similarity: list[list[float]]
    relations: dict[str, Relations]


@dataclass
class Walk:
    """What notebook 06 plots about MulKI's second task."""

    task: str
    classnames: list[str]
    label: int  # the watched image's class
    image: torch.Tensor  # the watched image (uint8, 3 x H x W)
    before: Moment
    after: Moment
    teacher_weights: list[float]  # the pretrained teacher's weight of every training sample
    record: MulKITaskRecord
    stats: TaskStats


class WalkThrough(Observer):
    """Watches MulKI's ``index``-th task: a moment before training, one after (before the
    weight averaging of stage 4), and the teacher weights of every step."""

    name = "mulki-walkthrough"

    def __init__(self, index: int = 1) -> None:
        self.index = index
        self.moments: dict[str, Moment] = {}
        self.teacher_weights: list[float] = []

    def on_task_start(self, method: MulKI, state: MulKIState) -> None:
        if state.index == self.index:
            self.moments["before"] = moment(method, state)

    def on_task_trained(self, method: MulKI, state: MulKIState) -> None:
        if state.index == self.index:
            self.moments["after"] = moment(method, state)
            self.teacher_weights = torch.cat(state.weights).tolist() if state.weights else []


@torch.no_grad()
def moment(method: MulKI, state: MulKIState) -> Moment:
    """The prototype-text similarities and the first test image's relations, now."""
    task, o = state.task, method.options
    scale = method.model.logit_scale.exp()
    prototypes = state.prototypes.detach()
    image = task.images("test")[:1]
    label = int(task.test_labels[0])
    names = ["pretrained teacher", "previous teacher"][: len(state.teachers)]
    relations = {}
    for name, model in [*zip(names, state.teachers, strict=True), ("student", method.model)]:
        model.eval()
        feats = embed_images(model, image)
        text = class_embeddings(model, task.prompt_tokens, task.num_classes)
        relations[name] = Relations(
            relation_distribution(feats, prototypes, scale, o.temperature)[0].tolist(),
            relation_distribution(feats, text, scale, o.temperature)[0].tolist(),
            F.softmax(relation_logits(feats, text, scale), -1)[0, label].item(),
        )
    text = class_embeddings(method.model, task.prompt_tokens, task.num_classes)
    similarity = (F.normalize(prototypes, dim=-1) @ text.T).tolist()
    return Moment(similarity, relations)


def walk_through(
    first: Task,
    second: Task,
    steps: int,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> Walk:
    """Learn ``first``, then ``second`` with MulKI, keeping what notebook 06 plots (a
    progress bar per task unless ``progress`` is False)."""
    model, _, tokenizer = load_backbone(device=device)
    method = build_method("mulki", model, tokenizer, TrainConfig(steps=steps), options)
    watcher = WalkThrough(index=1)
    result = run_stream(method, [first, second], seed=seed, observers=[watcher], progress=progress)
    task = make_format(second, tokenizer)
    return Walk(
        task=task.name,
        classnames=list(task.classnames),
        label=int(task.test_labels[0]),
        image=task.images("test")[0],
        before=watcher.moments["before"],
        after=watcher.moments["after"],
        teacher_weights=watcher.teacher_weights,
        record=method.records[-1],
        stats=result.task_stats[1],
    )


__all__ = ["Moment", "Relations", "Walk", "WalkThrough", "walk_through"]
