"""The contract every continual-learning method fulfils, and the registry that names them.

The engine (:func:`clviz.core.loop.learn_task`) owns the training loop; a method answers a
handful of questions about each task, in this order::

    state = method.begin_task(task, index)       # set up: teachers, routers, queries, heads
    for stage in method.stages(state):           # what trains, at which rate, for how long
        ... method.loss(batch, state) ...         # under method.context(task), one batch a step
        ... method.after_step(state, step) ...    # weight ensembles, prototype updates
    method.end_task(state)                       # freeze, interpolate, fit a selector

and at any time it predicts on any task (``predictor``) under ``context(task)``: the routing,
query set or bypass it uses for that task. Per-task state lives in a :class:`TaskState`
dataclass that ``begin_task`` returns, never in attributes created and deleted on the way.
Everything a method keeps across tasks is in ``state_dict`` (checkpoints) and its typed
``record`` (figures). Adding a method is adding one file with one ``@register_method`` class
(see ``docs/add_a_method.md``).

The base class is continual full fine-tuning with the suite's shared loss: cross-entropy with
label smoothing on the task format's logits (``logit_scale * cos``), the logit scale never
trained. Tasks are :class:`~clviz.core.formats.TaskFormat` objects, so the same life cycle
learns classification, image-text matching, VQA and text-only tasks.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clviz.core.clip import class_embeddings, image_features
from clviz.core.config import TrainConfig
from clviz.core.device import module_device
from clviz.core.formats import Batch, ClassificationFormat, ScoreHead, TaskFormat, logit_scale
from clviz.core.result import MethodRecord
from clviz.core.validation import check_options


@dataclass
class TaskState:
    """What a method holds while it learns one task; subclasses add their own fields."""

    task: TaskFormat
    index: int  # position of the task in the stream


@dataclass
class Stage:
    """One optimisation stage: AdamW over ``params`` (parameters, or groups with their own
    ``lr``) at ``lr`` for ``steps`` steps. A stage with no steps or no parameters is skipped."""

    params: list[nn.Parameter] | list[dict[str, Any]]
    lr: float
    steps: int
    name: str = "train"


@dataclass(frozen=True)
class TowerShape:
    """Width and number of residual blocks of one tower of a backbone."""

    width: int
    layers: int


@dataclass
class NoOptions:
    """A method without hyper-parameters of its own."""


class Method:
    """Base class: full-model training with the suite's shared loss; subclasses override hooks."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    # A run's time relative to fine-tuning's on the same stream (the main job's per-method
    # seconds in benchmarks/RESULTS.md): the longest runs start first when runs train side
    # by side (clviz.experiments.workers). A scheduling hint only; no number depends on it.
    relative_cost: ClassVar[float] = 1.0

    def __init__(
        self, model: nn.Module, tokenizer, train: TrainConfig | None = None, options: Any = None
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.train_config = train if train is not None else TrainConfig()
        self.options = options if options is not None else self.Options()
        self.heads: dict[str, nn.Module] = {}  # per-task heads (matching tasks), by task name

    @classmethod
    def added_parameters(cls, options: Any, shape: dict[str, TowerShape], tasks: int) -> int:
        """Parameters the method adds to a backbone of ``shape`` (per tower) over ``tasks``
        tasks, for a memory estimate before any work (adapter methods override it)."""
        return 0

    # ------------------------------------------------------------------ learning a task
    def begin_task(self, task: TaskFormat, index: int) -> TaskState:
        """Set up for learning ``task`` (the ``index``-th of the stream); returns its state."""
        self.add_head(task)
        return TaskState(task, index)

    def stages(self, state: TaskState) -> Iterator[Stage]:
        """The optimisation stages of the task (one, by default)."""
        yield Stage(
            self.trainable_parameters(state),
            self.learning_rate_for(state.task),
            self.train_config.steps_for(state.index),
        )

    def loss(self, batch: Batch, state: TaskState) -> torch.Tensor:
        """The training objective on one batch; methods add their regularisers here."""
        return self.task_loss(batch, state.task)

    def after_step(self, state: TaskState, step: int) -> None:
        """Called after each optimiser step (weight ensembling, prototype updates...)."""

    def end_task(self, state: TaskState) -> None:
        """Called after training on the task: freeze, snapshot, interpolate, fit a selector."""

    # ------------------------------------------------------------------ evaluation
    def context(self, task: TaskFormat) -> AbstractContextManager:
        """The routing, query set or bypass the model uses for ``task`` (training and
        evaluation alike). The base model has one path for every task."""
        return nullcontext()

    def predictor(self, task: TaskFormat) -> Callable[[Batch], torch.Tensor]:
        """A function from a test batch of ``task`` to its logits (no gradients). What every
        batch shares (the head, the class or label embeddings) is computed once, here."""
        self.model.eval()
        head = self.eval_head(task)
        with torch.no_grad(), self.context(task):
            text = task.text_side(self.model)

        @torch.no_grad()
        def predict(batch: Batch) -> torch.Tensor:
            self.model.eval()
            with self.context(task):
                return task.logits(self.model, batch, head, text)

        return predict

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, task: TaskFormat) -> torch.Tensor:
        """Normalised embeddings of ``images`` as the method sees them when evaluating
        ``task`` (what the drift analysis records)."""
        self.model.eval()
        with self.context(task):
            return image_features(self.model, images)

    @torch.no_grad()
    def text_embeddings(self, task: ClassificationFormat) -> torch.Tensor:
        """Normalised class embeddings (C x D) of ``task`` as the method sees them."""
        self.model.eval()
        with self.context(task):
            return class_embeddings(self.model, task.prompt_tokens, task.num_classes)

    def record(self, tasks: Sequence[TaskFormat]) -> MethodRecord | None:
        """What the method keeps beyond the accuracy matrix, for figures (None: nothing);
        ``tasks`` are the stream's tasks."""
        return None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after a finished task."""
        return {
            "model": self.model.state_dict(),
            "heads": {name: head.state_dict() for name, head in self.heads.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.heads = {
            name: ScoreHead.from_state(h).to(self.device).requires_grad_(False)
            for name, h in state["heads"].items()
        }

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        """Where the model lives: everything the method creates goes there too."""
        return module_device(self.model)

    @property
    def learning_rate(self) -> float:
        """The optimiser's learning rate (adapter methods take theirs from their options)."""
        return self.train_config.lr

    def learning_rate_for(self, task: TaskFormat) -> float:
        """``task``'s base rate: ``TrainConfig.task_lr[task.name]`` where given (a reference's
        per-task rates), else :attr:`learning_rate`."""
        return (self.train_config.task_lr or {}).get(task.name, self.learning_rate)

    def model_parameters(self) -> list[nn.Parameter]:
        """Every weight of the model but the logit scale (what full fine-tuning trains)."""
        return [p for n, p in self.model.named_parameters() if n != "logit_scale"]

    def trainable_parameters(self, state: TaskState) -> list[nn.Parameter]:
        """What the optimiser updates on ``state``'s task: the model and the task's head."""
        head = self.heads.get(state.task.name)
        return self.model_parameters() + ([] if head is None else list(head.parameters()))

    def task_loss(self, batch: Batch, task: TaskFormat) -> torch.Tensor:
        """The shared loss: cross-entropy with label smoothing on the format's logits."""
        logits = task.logits(self.model, batch, self.heads.get(task.name))
        return F.cross_entropy(
            logits,
            batch.labels.to(logits.device),
            label_smoothing=self.train_config.label_smoothing,
        )

    def classification_loss(
        self, image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """The shared loss from normalised image and class embeddings, for methods that reuse
        the embeddings in regularisers of their own (LwF, ZSCL, MulKI)."""
        logits = logit_scale(self.model) * image @ text.T
        return F.cross_entropy(
            logits, labels.to(logits.device), label_smoothing=self.train_config.label_smoothing
        )

    def add_head(self, task: TaskFormat) -> None:
        """Give ``task`` its own head if its format has one, initialised from the model as
        it is now, under the task's context."""
        head = task.make_head()
        if head is not None:
            head = head.to(self.device)
            with self.context(task):
                task.init_head(self.model, head)
            self.heads[task.name] = head

    def eval_head(self, task: TaskFormat) -> nn.Module | None:
        """The head ``task`` is evaluated with: its own if learned, else a fresh one
        initialised from the model now (an untrained matching task has no other)."""
        if task.name in self.heads:
            return self.heads[task.name]
        head = task.make_head()
        if head is not None:
            head = head.to(self.device)
            with self.context(task):
                task.init_head(self.model, head)
        return head

    def snapshot(self) -> nn.Module:
        """A frozen copy of the current model (a teacher, or the weights to interpolate)."""
        frozen = copy.deepcopy(self.model).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        return frozen

    def count_parameters(self) -> tuple[int, int]:
        """(trained on a task, total) parameter counts."""
        total = sum(p.numel() for p in self.model.parameters())
        return sum(p.numel() for p in self.model_parameters()), total


def classification_only(method: Method, task: TaskFormat) -> ClassificationFormat:
    """``task``, checked to be image classification (what most methods are defined for)."""
    if not isinstance(task, ClassificationFormat):
        raise ValueError(
            f"{method.name} learns image classification tasks only; {task.name!r} is a "
            f"{task.modality} task (atlas and finetune learn every format)"
        )
    return task


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
    """Build ``cls.Options`` from a dict; unknown keys raise with the valid ones listed, and
    values of the wrong type or out of range name their option
    (:func:`~clviz.core.validation.check_options`)."""
    values = dict(values or {})
    valid = {f.name for f in dataclasses.fields(cls.Options)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for method {cls.name!r}; "
            f"valid options: {', '.join(sorted(valid)) or 'none'}"
        )
    check_options(cls.name, cls.Options, values)
    return cls.Options(**values)


def build_method(
    name: str,
    model: nn.Module,
    tokenizer,
    train: TrainConfig | None = None,
    options: dict[str, Any] | None = None,
) -> Method:
    """The registered method ``name`` on ``model``, with ``options`` checked by name."""
    cls = get_method(name)
    return cls(model, tokenizer, train, make_options(cls, options))
