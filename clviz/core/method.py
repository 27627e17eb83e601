"""The contract every continual-learning method fulfils (the registry that names them is
:mod:`clviz.methods.registry`).

The engine (:func:`clviz.core.loop.learn_task`) owns the training loop; a method answers a
handful of questions about each task, in this order::

    state = method.begin_task(task, index, draws)  # set up: teachers, routers, queries, heads
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
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clviz.core.clip import class_embeddings, image_features
from clviz.core.config import TrainConfig
from clviz.core.device import module_device
from clviz.core.formats import Batch, ClassificationFormat, ScoreHead, TaskFormat, logit_scale
from clviz.core.rates import resolve_rate
from clviz.core.result import MethodRecord
from clviz.errors import InputError


@dataclass
class TaskState:
    """What a method holds while it learns one task; subclasses add their own fields.

    ``draws`` is the generator of every random draw the method makes on the task (reference
    images, a replay memory, a held-out split): the loop seeds it from the run's seed and the
    task's index alone (:func:`clviz.core.loop.draws_for`), so two seeds draw differently and a
    resumed run draws what an uninterrupted one did."""

    task: TaskFormat
    index: int  # position of the task in the stream
    draws: torch.Generator


@dataclass
class Stage:
    """One optimisation stage: AdamW over ``params`` (parameters, or groups with their own
    ``lr``) at ``lr`` for ``steps`` steps. A stage with no steps or no parameters is skipped.

    A stage only describes: what must change when it starts (ATLAS's new adapter) is its
    ``begin``, which the loop runs first (:meth:`start`); ``params`` may then be a function,
    read after ``begin``."""

    params: list[nn.Parameter] | list[dict[str, Any]] | Callable[[], list]
    lr: float
    steps: int
    name: str = "train"
    begin: Callable[[], None] | None = None

    def start(self) -> list[nn.Parameter] | list[dict[str, Any]]:
        """Begin the stage (its ``begin``) and return what it trains: what the loop does."""
        if self.begin is not None:
            self.begin()
        return self.params() if callable(self.params) else self.params


@dataclass(frozen=True)
class TowerShape:
    """Width and number of residual blocks of one tower of a backbone."""

    width: int
    layers: int


@dataclass
class NoOptions:
    """A method without hyper-parameters of its own."""


@dataclass(frozen=True)
class ReferenceSpec:
    """The data a method reads beside its tasks (ZSCL's distillation set, DDAS's generic
    images), as the method's options describe it. A method never reads data itself: the
    registry loads what it declares (:func:`clviz.data.reference.load_reference`) and hands it
    over as :class:`Reference`.

    Images come from ``image_folder`` (every file; or, with ``draw_from_folder``, ``images`` of
    them drawn once with ``folder_seed``: a fixed subset, like a dataset split), else from the
    embedded world's pretraining corpus drawn with ``corpus_seed`` (its first ``images``, at
    ``corpus_size`` px; None: the model's input size). Captions: the first ``captions`` distinct
    lines of ``caption_file``, else of the same corpus."""

    images: int
    captions: int = 0
    image_folder: str | None = None
    caption_file: str | None = None
    corpus_seed: int = 0
    corpus_size: int | None = None
    draw_from_folder: bool = False
    folder_seed: int = 0


class Reference:
    """Reference data, loaded on first use by ``load`` (a method built only to count its
    parameters reads nothing): images (a uint8 tensor, or a lazy store read as needed) and
    captions."""

    def __init__(self, load: Callable[[], tuple[Any, list[str]]]) -> None:
        self._load = load

    @functools.cached_property
    def _loaded(self) -> tuple[Any, list[str]]:
        return self._load()

    @property
    def images(self) -> Any:
        return self._loaded[0]

    @property
    def captions(self) -> list[str]:
        return self._loaded[1]


@dataclass(frozen=True)
class ClassIncrementalSetting:
    """How a method is trained class-incrementally, on the reference code's ``cil/`` recipe:
    the options it sets there and its label smoothing."""

    options: dict[str, Any] = field(default_factory=dict)
    label_smoothing: float = 0.2


class Method:
    """Base class: full-model training with the suite's shared loss; subclasses override hooks."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    # A run's time relative to fine-tuning's on the same stream (the main job's per-method
    # seconds in benchmarks/RESULTS.md): the longest runs start first when runs train side
    # by side (clviz.experiments.workers). A scheduling hint only; no number depends on it.
    relative_cost: ClassVar[float] = 1.0
    # Where list_methods() places the method: baselines first, then the papers' methods.
    listing_order: ClassVar[int] = 100
    # The task formats it learns (TaskFormat: every one), checked before any training.
    formats: ClassVar[tuple[type[TaskFormat], ...]] = (TaskFormat,)
    # Its class-incremental recipe (clviz.experiments.class_incremental); None: it has none.
    class_incremental: ClassVar[ClassIncrementalSetting | None] = None

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        train: TrainConfig | None = None,
        options: Any = None,
        reference: Reference | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.train_config = train if train is not None else TrainConfig()
        self.options = options if options is not None else self.Options()
        self.heads: dict[str, nn.Module] = {}  # per-task heads (matching tasks), by task name
        spec = self.reference_spec(self.options)
        if spec is not None and reference is None:
            raise InputError(
                f"{self.name} reads reference data ({spec}); build it with "
                "clviz.methods.build_method, which loads it, or pass reference="
            )
        self.reference = reference

    @classmethod
    def reference_spec(cls, options: Any) -> ReferenceSpec | None:
        """The data the method reads beside its tasks, from its options (None: none)."""
        return None

    @classmethod
    def added_parameters(cls, options: Any, shape: dict[str, TowerShape], tasks: int) -> int:
        """Parameters the method adds to a backbone of ``shape`` (per tower) over ``tasks``
        tasks, for a memory estimate before any work (adapter methods override it)."""
        return 0

    # ------------------------------------------------------------------ learning a task
    def begin_task(self, task: TaskFormat, index: int, draws: torch.Generator) -> TaskState:
        """Set up for learning ``task`` (the ``index``-th of the stream), whose random draws
        come from ``draws``; returns its state."""
        self.add_head(task)
        return TaskState(task, index, draws)

    def stages(self, state: TaskState) -> Iterator[Stage]:
        """The optimisation stages of the task (one, by default)."""
        yield Stage(
            self.trainable_parameters(state),
            self.rate(state.task),
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

    def rate(self, task: TaskFormat, scale: float = 1.0) -> float:
        """The learning rate of a parameter group of ``task`` (``scale`` times the task's base
        rate), as :func:`clviz.core.rates.resolve_rate` decides it: the per-task table, else
        the method's own ``lr`` option, else the run's rate."""
        return resolve_rate(self.train_config, self.options, task.name, scale)

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

    def parameter_breakdown(self, tasks: int) -> dict[str, int]:
        """The method's parameters after ``tasks`` tasks, without training: ``trainable`` and
        ``total``, and the parts the method names (MoE-Adapters: experts and routers per
        tower). Methods whose parameters grow per task grow them here first."""
        trainable, total = self.count_parameters()
        return {"trainable": trainable, "total": total}


def check_formats(method: Method | type[Method], tasks: Sequence[TaskFormat]) -> None:
    """Refuse, before any training, tasks whose format ``method`` does not learn (its
    :attr:`Method.formats`), naming the formats it does."""
    for task in tasks:
        if not isinstance(task, method.formats):
            learns = " and ".join(f.kind for f in method.formats)
            raise InputError(
                f"{method.name} learns {learns} tasks only; {task.name!r} is a {task.kind} "
                "task: choose a method that learns it ('clviz list' shows what each learns)"
            )
