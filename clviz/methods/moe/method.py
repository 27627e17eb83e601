"""MoE-Adapters (Yu et al., CVPR 2024; reference code JiazuoYu/MoE-Adapters4CL).

The backbone is frozen (both towers and the logit scale). Every residual block of both towers
gets a pool of expert adapters and one router per task (:mod:`clviz.methods.moe.layer`). While
task t trains, only router t and the experts not yet frozen learn; the selection counts of each
layer are kept, and after the task its ``freeze_per_task`` most-selected experts join the
layer's frozen set (activate-freeze). Frozen experts stay selectable by later routers: that is
how knowledge is reused.

``moe-adapters-taskid`` is told which task an image comes from (an oracle). A task not learned
yet has no router of its own; it is routed with the newest router, as the reference does
without its auto-selector. ``moe-adapters`` adds the DDAS auto-selector
(:mod:`clviz.methods.moe.ddas`), which picks each test image's router, or sends it to the
untouched backbone when it looks unfamiliar.

Our defaults for the embedded stream: 16 experts (two per task of the 8-task stream, as the
reference's 22 for 11 tasks), bottleneck 64, top-2, learning rate 1e-3 (the embedded world's
profiles raise it to 5e-3, a teaching setting: :mod:`clviz.experiments.profiles`); the
load-balancing loss is computed but, as in the reference, not added unless ``balance_loss``
is set.

``one_router`` is the reference's class-incremental variant (its ``cil/`` code): every task
trains and is tested through one router (``global_taskid`` 0 there), so no task id is ever
needed; with ``freeze_per_task=0`` there is no activate-freeze either
(:func:`clviz.experiments.class_incremental.reference_config` sets both, and 2 experts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from clviz.core import distributed
from clviz.core.clip import class_embeddings, image_features
from clviz.core.formats import Batch, ClassificationFormat, TaskFormat
from clviz.core.method import (
    ClassIncrementalSetting,
    Method,
    ReferenceSpec,
    TaskState,
    TowerShape,
)
from clviz.core.result import MethodRecord, register_record
from clviz.core.validation import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    UNBOUNDED,
    Range,
    bounded,
)
from clviz.errors import InputError
from clviz.methods.moe.ddas import (
    DDAS,
    REFERENCE_THRESHOLDS,
    selection_confusion,
)
from clviz.methods.moe.layer import attach_moe_adapters
from clviz.methods.registry import register_method
from clviz.methods.row_cache import RowCache
from clviz.methods.sites import site_tower, use_task


@dataclass
class MoEOptions:
    experts: int = bounded(16, AT_LEAST_ONE)
    bottleneck: int = bounded(64, AT_LEAST_ONE)
    top_k: int = bounded(2, AT_LEAST_ONE, at_most="experts")
    freeze_per_task: int = bounded(2, NON_NEGATIVE, at_most="experts")
    lr: float = bounded(1e-3, POSITIVE)
    balance_loss: bool = False
    one_router: bool = False  # every task shares router 0 (the reference's class-incremental code)


@register_record
@dataclass
class RoutingRecord(MethodRecord):
    """Selection counts of every expert of every layer while each task trained (layer name ->
    counts), and each layer's frozen experts after each task."""

    kind = "moe"
    selections: list[dict[str, list[int]]]
    frozen_history: list[dict[str, list[int]]]


@dataclass
class MoEState(TaskState):
    router: int  # the task's router in every layer


@register_method
class MoEAdaptersTaskId(Method):
    name = "moe-adapters-taskid"
    listing_order = 8
    # The reference's cil/ recipe: one shared router, 2 experts, no activate-freeze, its yaml's
    # rate (stated so that no profile's rate replaces it), no label smoothing.
    class_incremental = ClassIncrementalSetting(
        options={"experts": 2, "top_k": 2, "freeze_per_task": 0, "one_router": True, "lr": 1e-3},
        label_smoothing=0.0,
    )
    summary = "MoE adapters with per-task routers and activate-freeze, told the task id"
    Options = MoEOptions

    @classmethod
    def added_parameters(cls, options: Any, shape: dict[str, TowerShape], tasks: int) -> int:
        """Every block of both towers: ``experts`` adapters (down, up and their biases) and a
        gate and a noise matrix per task's router."""
        e, r = options.experts, options.bottleneck
        per_block = [
            (e * (2 * s.width * r + s.width + r) + tasks * 2 * s.width * e, s.layers)
            for s in shape.values()
        ]
        return sum(count * layers for count, layers in per_block)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        device = self.device  # the backbone's, before the adapters are attached
        self.layers = attach_moe_adapters(self.model, o.experts, o.bottleneck, o.top_k)
        for layer in self.layers.values():
            layer.balance = o.balance_loss
        self.model.to(device)
        self.routers: list[str] = []  # the task of each router, in order
        self.frozen: dict[str, set[int]] = {name: set() for name in self.layers}
        self.selections: list[dict[str, list[int]]] = []  # counts per learned task and layer
        self.frozen_history: list[dict[str, list[int]]] = []  # frozen sets after each task

    def add_router(self) -> int:
        """One more router in every layer; returns its index (the same in every layer)."""
        (index,) = {layer.router.add_task() for layer in self.layers.values()}
        self.model.to(self.device)  # the new routers join the backbone's device
        return index

    def router_for(self, task: TaskFormat) -> int:
        """The router of ``task`` if it has one, else the newest (router 0 with
        ``one_router``, whose only router carries the first task's name)."""
        return self.routers.index(task.name) if task.name in self.routers else len(self.routers) - 1

    # ------------------------------------------------------------------ learning a task
    def begin_task(self, task: TaskFormat, index: int, draws: torch.Generator) -> MoEState:
        if self.options.one_router and self.routers:
            router = 0  # the first task's router goes on learning (one router for all)
        else:
            router = self.add_router()
            self.routers.append(task.name)
        for name, layer in self.layers.items():
            layer.counts.zero_()
            for e, expert in enumerate(layer.experts.experts):
                expert.requires_grad_(e not in self.frozen[name])
            for t, (gate, noise) in enumerate(
                zip(layer.router.gates, layer.router.noise, strict=True)
            ):
                gate.requires_grad_(t == router)
                noise.requires_grad_(t == router)
        self.add_head(task)
        return MoEState(task, index, draws, router)

    def trainable_parameters(self, state: TaskState) -> list[nn.Parameter]:
        head = self.heads.get(state.task.name)
        own = [] if head is None else list(head.parameters())
        return [p for p in self.model.parameters() if p.requires_grad] + own

    def loss(self, batch: Batch, state: TaskState) -> torch.Tensor:
        loss = self.task_loss(batch, state.task)
        if self.options.balance_loss:
            loss = loss + sum(layer.aux_loss for layer in self.layers.values())
        return loss

    def end_task(self, state: TaskState) -> None:
        for layer in self.layers.values():  # each process counted its own slice of the batches
            distributed.all_reduce_sum(layer.counts)
        counts = {name: layer.counts.tolist() for name, layer in self.layers.items()}
        for name, c in counts.items():
            top = sorted(range(len(c)), key=lambda e: (-c[e], e))[: self.options.freeze_per_task]
            self.frozen[name].update(top)
        self.selections.append(counts)
        self.frozen_history.append({n: sorted(f) for n, f in self.frozen.items()})

    # ------------------------------------------------------------------ evaluation
    def context(self, task: TaskFormat) -> AbstractContextManager:
        """Route by ``task``'s router (the newest for a task without one); before any task
        has a router, the adapters (all zero at the start) are bypassed."""
        if not self.routers:
            return use_task(self.layers.values(), None)
        return use_task(self.layers.values(), self.router_for(task))

    def record(self, tasks: Sequence[TaskFormat]) -> RoutingRecord:
        return RoutingRecord(self.selections, self.frozen_history)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "routers": list(self.routers),
            "frozen": {n: sorted(f) for n, f in self.frozen.items()},
            "selections": self.selections,
            "frozen_history": self.frozen_history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for _ in state["routers"]:
            self.add_router()
        super().load_state_dict(state)
        self.routers = list(state["routers"])
        self.frozen = {n: set(f) for n, f in state["frozen"].items()}
        self.selections, self.frozen_history = state["selections"], state["frozen_history"]

    def count_parameters(self) -> tuple[int, int]:
        """(experts + routers of every task so far, total): the paper's accounting."""
        adapters = sum(p.numel() for layer in self.layers.values() for p in layer.parameters())
        return adapters, sum(p.numel() for p in self.model.parameters())

    def parameter_breakdown(self, tasks: int) -> dict[str, int]:
        """Routers for ``tasks`` tasks, then experts and routers counted per tower."""
        while self.layers and len(next(iter(self.layers.values())).router.gates) < tasks:
            self.add_router()
        parts = {"image_experts": 0, "text_experts": 0, "image_routers": 0, "text_routers": 0}
        for name, layer in self.layers.items():
            tower = site_tower(name)
            parts[f"{tower}_experts"] += sum(p.numel() for p in layer.experts.parameters())
            parts[f"{tower}_routers"] += sum(p.numel() for p in layer.router.parameters())
        return {**super().parameter_breakdown(tasks), **parts}


FEATURE_BATCH = 256  # images per DDAS feature pass (the default evaluation batch: cache hits)
GENERIC_CORPUS_SEED = 0  # the pretraining corpus's seed: its first images are the generic set


@dataclass
class MoEDDASOptions(MoEOptions):
    ddas_steps: int = bounded(300, NON_NEGATIVE, count=True)
    ddas_code: int = bounded(100, AT_LEAST_ONE, count=True)
    # share of held-out in-distribution images kept in distribution
    ddas_quantile: float = bounded(0.95, Range(0, 1, low_open=True))
    # share of each task's training images kept from its autoencoder
    ddas_heldout: float = bounded(0.1, FRACTION)
    per_batch: bool = False  # the reference decides once per evaluation batch
    ddas_pool: str = "tokens"  # DDAS features: every token ("tokens") or their mean ("mean")
    # the image block whose output DDAS reads (-2: the last but one)
    ddas_block: int = bounded(-2, UNBOUNDED)
    # DDAS features kept between evaluations; 0 turns it off
    feature_cache_mb: int = bounded(1024, NON_NEGATIVE)
    ddas_generic: bool = True  # the reference's generic autoencoder (TinyImageNet there)
    generic_folder: str | None = None  # its images: a folder (any layout), else the embedded
    # generic images it learns (a seeded draw from the folder)
    generic_images: int = bounded(1024, AT_LEAST_ONE, count=True)
    allow_embedded_generic: bool = True  # without generic_folder: the pretraining corpus
    # a fixed threshold; None: calibrated on held-out
    ddas_threshold: float | None = bounded(None, NON_NEGATIVE)

    def __post_init__(self) -> None:  # checked when the options are made: before any work
        if self.ddas_generic and self.generic_folder is None and not self.allow_embedded_generic:
            raise InputError(
                "DDAS's generic autoencoder learns generic images (TinyImageNet in the "
                "reference): pass --options "
                '\'{"generic_folder": "/path/to/tiny-imagenet/train"}\', '
                'or add "allow_embedded_generic": true to use the embedded pretraining corpus, '
                'or "ddas_generic": false to go without it'
            )


class TestErrors:
    """DDAS's errors on one task's test set, filled batch by batch as an evaluation goes: the
    N x T task errors and the N generic errors (on the CPU)."""

    def __init__(self, size: int, tasks: int) -> None:
        self.errors = torch.full((size, tasks), float("nan"))
        self.generic: torch.Tensor | None = None
        self.filled = torch.zeros(size, dtype=torch.bool)

    def fill(self, index, errors: torch.Tensor, generic: torch.Tensor | None) -> None:
        self.errors[index] = errors.cpu()
        if generic is not None:
            if self.generic is None:
                self.generic = torch.full((len(self.errors),), float("nan"))
            self.generic[index] = generic.cpu()
        self.filled[index] = True

    def complete(self, tasks: int) -> bool:
        """Whether every example was filled, with ``tasks`` autoencoders."""
        return bool(self.filled.all()) and self.errors.shape[1] == tasks


@dataclass
class DDASReport:
    """How DDAS routes each task's test images: the winning reconstruction error of every
    image, the confusion (true task x chosen router, last column: the backbone), the share
    chosen correctly (its own router for a learned task, the backbone for one not learned),
    and the share sent to the backbone by each mechanism: the generic autoencoder won
    (``by_generic``) or the error passed the threshold (``by_threshold``)."""

    best_errors: dict[str, list[float]]
    confusion: list[list[int]]
    correct: dict[str, float]
    learned: list[str]
    threshold: float
    by_generic: dict[str, float] = field(default_factory=dict)
    by_threshold: dict[str, float] = field(default_factory=dict)
    generic_errors: dict[str, list[float]] = field(default_factory=dict)


@register_record
@dataclass
class DDASRecord(RoutingRecord):
    """The routing record plus DDAS's report in each decision mode ("per_sample",
    "per_batch")."""

    kind = "moe-ddas"
    ddas: dict[str, DDASReport]


REPORT_MODES = {  # decision mode -> (decide per batch, threshold: None for the calibrated one)
    "per_sample": (False, None),
    "per_batch": (True, None),
    "per_batch_reference": (True, REFERENCE_THRESHOLDS["full-shot"]),
}


@register_method
class MoEAdapters(MoEAdaptersTaskId):
    """MoE-Adapters with DDAS: the auto-selector picks each test image's router, or sends it
    to the untouched backbone (adapters bypassed in both towers) when it looks unfamiliar.

    The generic autoencoder learns ``generic_images`` images of ``generic_folder`` (the
    reference trains it on TinyImageNet), or, on the embedded world, the first images of the
    tiny CLIP's pretraining corpus: the world's generic set. Under the ``mtil`` profile a
    folder is required unless ``allow_embedded_generic`` is set."""

    name = "moe-adapters"
    listing_order = 9
    formats = (ClassificationFormat,)
    # a clviz extension, not the reference: DDAS chooses the router where cil/ shares one
    class_incremental = ClassIncrementalSetting(label_smoothing=0.0)
    relative_cost = 1.15
    summary = "MoE adapters with activate-freeze and the DDAS auto-selector (no task id)"
    Options = MoEDDASOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        if o.one_router:
            raise InputError(
                "moe-adapters picks a router per task with DDAS, so it cannot share one router "
                "(one_router); use moe-adapters-taskid with one_router=true, the reference's "
                "class-incremental variant"
            )
        self.ddas = DDAS(
            code_dims=o.ddas_code,
            steps=o.ddas_steps,
            quantile=o.ddas_quantile,
            feature_block=o.ddas_block,
            pool=o.ddas_pool,
        ).to(self.device)
        # Frozen by construction, so computed once per test image, not once per matrix row:
        # keyed by (task name, split) and the image's position in the split.
        self.generic_features = RowCache(self._backbone_features, o.feature_cache_mb << 20)
        # DDAS's errors on each task's test set, as the last evaluation computed them (record)
        self.test_errors: dict[str, TestErrors] = {}

    def _backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """DDAS's input: frozen backbone features, every adapter bypassed."""
        with use_task(self.layers.values(), None):
            return self.ddas.features(self.model, images)

    @classmethod
    def reference_spec(cls, options: MoEDDASOptions) -> ReferenceSpec | None:
        """The generic autoencoder's images: ``generic_images`` of ``generic_folder`` (a fixed
        subset, drawn once), else the first ones of the tiny CLIP's pretraining corpus; none
        without the generic autoencoder (``ddas_generic`` false)."""
        if not options.ddas_generic:
            return None
        return ReferenceSpec(
            images=options.generic_images,
            image_folder=options.generic_folder,
            corpus_seed=GENERIC_CORPUS_SEED,
            draw_from_folder=True,
        )

    def fit_generic(self, draws: torch.Generator) -> None:
        """Train the generic autoencoder (once, before the first task's), its draws from
        ``draws``; DDAS's feature pass reads the images a batch at a time itself."""
        self.ddas.fit_generic(self._backbone_features(self.reference.images), draws)

    def end_task(self, state: TaskState) -> None:
        super().end_task(state)
        if self.options.ddas_generic and self.ddas.generic is None:
            self.fit_generic(state.draws)
        task = state.task
        order = torch.randperm(task.size("train"), generator=state.draws)
        n_held = max(1, int(self.options.ddas_heldout * len(order)))
        feats = self.split_features(task, "train")
        self.ddas.fit_task(feats[order[n_held:]], feats[order[:n_held]], state.draws)

    def split_features(self, task: TaskFormat, split: str) -> torch.Tensor:
        """DDAS features of a whole split, a batch at a time (a real dataset is read from disk
        as it goes, never held as images); test batches hit the evaluation's cache (the
        training split's features, read once per task, are not kept)."""
        batches = task.batches(split, FEATURE_BATCH)
        if split != "test":
            return torch.cat([self._backbone_features(b.images) for b in batches])
        return torch.cat([self.generic_features.batch(task.name, b) for b in batches])

    def context(self, task: TaskFormat) -> AbstractContextManager:
        """A task with a router (what DDAS picks for its familiar images) goes through it;
        any other through the untouched backbone. DDAS routes images itself
        (:meth:`predictor`); this is the route of the text side, and of training."""
        if task.name in self.routers:
            return super().context(task)
        return use_task(self.layers.values(), None)

    def route(
        self,
        images: torch.Tensor,
        features: torch.Tensor | None = None,
        errors: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ):
        """(chosen router, out-of-distribution flag, embedding) of each image, as DDAS routes
        it (its task is never looked at); ``features``: the images' DDAS features where known
        (cached), else computed; ``errors``: their autoencoders' errors where known."""
        o = self.options
        if errors is None:
            if features is None:
                features = self._backbone_features(images)
            errors = self.ddas.reconstruction_errors(features)
        chosen = self.ddas.select_from_errors(*errors, o.per_batch, o.ddas_threshold)
        selected, ood = chosen.task, chosen.ood
        with use_task(self.layers.values(), selected, ood):
            return selected, ood, image_features(self.model, images, batch_size=len(images))

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, task: TaskFormat) -> torch.Tensor:
        """Each image routed as DDAS decides."""
        if not len(self.ddas):
            return super().image_embeddings(images, task)
        self.model.eval()
        return self.route(images)[2]

    def predictor(self, task: TaskFormat) -> Callable[[Batch], torch.Tensor]:
        """Each image through the router DDAS picks for it, against the class texts through
        the same router (the zero-shot head for the images sent to the backbone)."""
        if not len(self.ddas):
            return super().predictor(task)

        kept = self.test_errors[task.name] = TestErrors(task.size("test"), len(self.ddas))

        @torch.no_grad()
        def predict(batch: Batch) -> torch.Tensor:
            self.model.eval()
            features = self.generic_features.batch(task.name, batch)
            errors = self.ddas.reconstruction_errors(features)
            if batch.split == "test":
                kept.fill(batch.index, *errors)
            selected, ood, image = self.route(batch.images, errors=errors)
            logits = image.new_empty(len(batch), task.num_classes)
            for router, bypass in {(int(t), bool(o)) for t, o in zip(selected, ood, strict=True)}:
                rows = (selected == router) & (ood == bypass)
                with use_task(self.layers.values(), None if bypass else router):
                    text = class_embeddings(self.model, task.prompt_tokens, task.num_classes)
                logits[rows] = (image[rows] @ text.T).to(logits.dtype)
            return logits

        return predict

    def record(self, tasks: Sequence[TaskFormat]) -> DDASRecord:
        """The routing record with DDAS's selection report in each decision mode, from the
        errors the last evaluation computed (no second pass over the test sets)."""
        reports = {
            mode: self.selection_report(tasks, per_batch, threshold)
            for mode, (per_batch, threshold) in REPORT_MODES.items()
        }
        return DDASRecord(self.selections, self.frozen_history, reports)

    @torch.no_grad()
    def selection_report(
        self,
        tasks: Sequence[TaskFormat],
        per_batch: bool | None = None,
        threshold: float | None = None,
    ) -> DDASReport:
        """How DDAS routes each task's test images (see :class:`DDASReport`); a per-batch
        decision is taken on each evaluation batch of ``FEATURE_BATCH`` images."""
        per_batch = self.options.per_batch if per_batch is None else per_batch
        threshold = self.options.ddas_threshold if threshold is None else threshold
        learned = list(self.routers)
        limit = float(self.ddas.threshold) if threshold is None else threshold
        report = DDASReport({}, [], {}, learned, limit)
        for task in tasks:
            errors, generic = self.errors_of(task)
            parts = [
                self.ddas.select_from_errors(
                    errors[i : i + FEATURE_BATCH],
                    None if generic is None else generic[i : i + FEATURE_BATCH],
                    per_batch,
                    threshold,
                )
                for i in range(0, len(errors), FEATURE_BATCH)
            ]
            selected = torch.cat([p.task for p in parts])
            ood = torch.cat([p.ood for p in parts])
            name = task.name
            report.best_errors[name] = errors.min(dim=1).values.numpy().round(6).tolist()
            if generic is not None:
                report.generic_errors[name] = generic.numpy().round(6).tolist()
            report.confusion.append(selection_confusion(selected, ood, len(learned)).tolist())
            own = learned.index(name) if name in learned else None
            right = ood if own is None else (selected == own) & ~ood
            report.correct[name] = 100.0 * right.float().mean().item()
            for share, key in ((report.by_generic, "generic"), (report.by_threshold, "threshold")):
                share[name] = (
                    100.0 * torch.cat([getattr(p, key) for p in parts]).float().mean().item()
                )
        return report

    def errors_of(self, task: TaskFormat) -> tuple[torch.Tensor, torch.Tensor | None]:
        """DDAS's errors on ``task``'s whole test set (on the CPU): kept from the last
        evaluation when it covered the set with every autoencoder learned, else computed."""
        kept = self.test_errors.get(task.name)
        if kept is not None and kept.complete(len(self.ddas)):
            return kept.errors, kept.generic
        errors, generic = self.ddas.reconstruction_errors(self.split_features(task, "test"))
        return errors.cpu(), None if generic is None else generic.cpu()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "ddas": self.ddas.checkpoint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ddas.restore(state["ddas"])
