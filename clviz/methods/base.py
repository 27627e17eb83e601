"""The life cycle every continual-learning method shares, and the registry that names them.

A method is a small class: it is set up on a backbone, then for each task of a stream it is
trained (``train_task``), finishes the task (``end_task``: freeze, snapshot, interpolate...),
and can predict on any task at any time (``predict``). Adding a method is adding one file with
one ``@register_method`` class.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from clviz import distributed
from clviz.world.tasks import Task
from clviz.zeroshot import (
    class_embeddings,
    class_text_features,
    embed_images,
    image_features,
    prompt_tokens,
)


@dataclass
class TrainConfig:
    """How every method trains on a task (its own hyper-parameters live in its ``Options``)."""

    steps: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    label_smoothing: float = 0.2


@dataclass
class NoOptions:
    """A method without hyper-parameters of its own."""


class Method:
    """Base class: full-model training with the suite's shared loss; subclasses override parts.

    The shared loss is cross-entropy with label smoothing on ``logit_scale * cos(image, class
    text)`` against the current task's class prompts; the logit scale is never trained.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, model: nn.Module, tokenizer, train: TrainConfig, options: Any = None):
        self.model = model
        self.tokenizer = tokenizer
        self.train_cfg = train
        self.options = options if options is not None else self.Options()
        self.learned: list[Task] = []  # tasks finished so far, in order

    # ------------------------------------------------------------------ life cycle
    def begin_task(self, task: Task, index: int) -> None:
        """Called before training on ``task`` (the ``index``-th of the stream)."""

    def learning_rate(self) -> float:
        """The optimiser's learning rate (adapter methods override the shared default)."""
        return self.train_cfg.lr

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates on the current task."""
        return [p for n, p in self.model.named_parameters() if n != "logit_scale"]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings of uint8 ``images`` by the model being trained."""
        return embed_images(self.model, images)

    def task_loss(self, image: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
        """The shared classification loss, from normalised image embeddings of a batch."""
        text = class_embeddings(self.model, self._tokens, task.num_classes)
        logits = self.model.logit_scale.exp().detach() * image @ text.T
        return F.cross_entropy(
            logits, labels.to(logits.device), label_smoothing=self.train_cfg.label_smoothing
        )

    def loss(self, images: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
        """The training objective; methods add their regularisers here."""
        return self.task_loss(self.encode_images(images), labels, task)

    def after_step(self, step: int) -> None:
        """Called after each optimiser step (weight ensembling, logging...)."""

    def train_task(
        self, task: Task, index: int, generator: torch.Generator, progress: bool = True
    ) -> dict[str, float]:
        """Train on ``task`` for ``train_cfg.steps`` steps; returns summary statistics."""
        params = self.trainable_parameters()
        if self.train_cfg.steps == 0 or not params:
            return {"steps": 0}
        self._tokens = prompt_tokens(self.tokenizer, task)
        return self.optimize(
            params,
            self.learning_rate(),
            self.train_cfg.steps,
            len(task.train_labels),
            lambda idx: self.loss(task.train_images[idx], task.train_labels[idx], task),
            generator,
            desc=f"{self.name} · {task.name}",
            progress=progress,
        )

    def optimize(
        self,
        params: list[nn.Parameter] | list[dict[str, Any]],
        lr: float,
        steps: int,
        n: int,
        batch_loss: Callable[[torch.Tensor], torch.Tensor],
        generator: torch.Generator,
        desc: str = "",
        progress: bool = True,
    ) -> dict[str, float]:
        """The inner loop every method shares: ``steps`` AdamW steps on ``params`` (or param
        groups with their own learning rates), each on a batch of ``train_cfg.batch_size``
        indices drawn with replacement from ``range(n)``; ``batch_loss(idx)`` is the objective.
        Methods with several stages (ATLAS) call it once per stage."""
        optimizer = torch.optim.AdamW(
            params, lr=lr, weight_decay=self.train_cfg.weight_decay, fused=True
        )
        losses = []
        self.model.train()
        run = distributed.data_parallel(self.model)  # plain call in a single process
        bar = tqdm(
            range(steps), desc=desc, disable=not progress or not distributed.is_main(), leave=False
        )
        for step in bar:
            idx = torch.randint(n, (min(self.train_cfg.batch_size, n),), generator=generator)
            mine = distributed.shard(idx)  # every process draws the same batch, takes its slice
            loss = run(functools.partial(batch_loss, mine))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.after_step(step)
            losses.append(loss.item())
        self.model.eval()
        tail = losses[-10:]
        return {"steps": len(losses), "first_loss": losses[0], "final_loss": sum(tail) / len(tail)}

    def end_task(self, task: Task, index: int) -> None:
        """Called after training on ``task``; subclasses freeze, snapshot or interpolate."""

    def finish_task(self, task: Task, index: int) -> None:
        """Run ``end_task`` and record the task as learned."""
        self.end_task(task, index)
        self.learned.append(task)

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, task: Task) -> torch.Tensor:
        """Normalised embeddings of ``images`` as the method sees them when evaluating ``task``
        (adapter methods route or pick queries by task here)."""
        self.model.eval()
        return image_features(self.model, images)

    @torch.no_grad()
    def text_embeddings(self, task: Task) -> torch.Tensor:
        """Normalised class embeddings (C x D) of ``task`` as the method sees them."""
        self.model.eval()
        return class_text_features(self.model, self.tokenizer, task)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, task: Task) -> torch.Tensor:
        """Logits of ``images`` over ``task``'s classes (task-incremental evaluation)."""
        return self.image_embeddings(images, task) @ self.text_embeddings(task).T

    def record(self, tasks: list[Task]) -> dict[str, Any]:
        """JSON-ready extras for ``results.json`` (what figures need beyond the matrix)."""
        return {}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after a finished task."""
        return {"model": self.model.state_dict(), "learned": [t.name for t in self.learned]}

    def load_state_dict(self, state: dict[str, Any], tasks: dict[str, Task]) -> None:
        self.model.load_state_dict(state["model"])
        self.learned = [tasks[n] for n in state["learned"]]

    # ------------------------------------------------------------------ helpers
    def snapshot(self) -> nn.Module:
        """A frozen copy of the current model (a teacher, or the weights to interpolate)."""
        frozen = copy.deepcopy(self.model).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        return frozen

    def count_parameters(self) -> tuple[int, int]:
        """(trainable on a task, total) parameter counts."""
        total = sum(p.numel() for p in self.model.parameters())
        return sum(p.numel() for p in self.trainable_parameters()), total


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or already registered")
    METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> type[Method]:
    """The method class called ``name``; the error lists the valid names."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def make_options(cls: type[Method], values: dict[str, Any] | None) -> Any:
    """Build ``cls.Options`` from a dict; unknown keys raise with the valid ones listed."""
    values = dict(values or {})
    valid = {f.name for f in dataclasses.fields(cls.Options)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for method {cls.name!r}; "
            f"valid options: {', '.join(sorted(valid)) or 'none'}"
        )
    return cls.Options(**values)
