"""MoE-Adapters (Yu et al., CVPR 2024; reference code JiazuoYu/MoE-Adapters4CL), given the task id.

The backbone is frozen (both towers and the logit scale). Every residual block of both towers
gets a pool of expert adapters and one router per task (:mod:`clviz.moe`). While task t trains,
only router t and the experts not yet frozen learn; the selection counts of each layer are kept,
and after the task its ``freeze_per_task`` most-selected experts join the layer's frozen set
(activate-freeze). Frozen experts stay selectable by later routers: that is how knowledge is
reused.

This variant is told which task an image comes from (an oracle). A task not learned yet has no
router of its own; it is routed with the newest router, as the reference does without its
auto-selector. The DDAS auto-selector variant is ``moe-adapters``.
Our defaults for the embedded stream: 16 experts (two per task of the 8-task stream, as the
reference's 22 for 11 tasks), bottleneck 64, top-2, learning rate 1e-3; the load-balancing loss
is computed but, as in the reference, not added unless ``balance_loss`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clviz import distributed
from clviz.feature_cache import FeatureCache
from clviz.methods.base import Method, register_method
from clviz.moe.ddas import DDAS, TaskAutoencoder, selection_confusion
from clviz.moe.layer import attach_moe_adapters, routing
from clviz.world.tasks import Task
from clviz.zeroshot import class_text_features, image_features


@dataclass
class MoEOptions:
    experts: int = 16
    bottleneck: int = 64
    top_k: int = 2
    freeze_per_task: int = 2
    lr: float = 1e-3
    balance_loss: bool = False


@register_method
class MoEAdaptersTaskId(Method):
    name = "moe-adapters-taskid"
    summary = "MoE adapters with per-task routers and activate-freeze, told the task id"
    Options = MoEOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.layers = attach_moe_adapters(self.model, o.experts, o.bottleneck, o.top_k)
        self.frozen: dict[str, set[int]] = {name: set() for name in self.layers}
        self.selections: list[dict[str, list[int]]] = []  # counts per learned task and layer
        self.frozen_history: list[dict[str, list[int]]] = []  # frozen sets after each task

    def learning_rate(self) -> float:
        return self.options.lr

    def add_router(self) -> int:
        """One more router in every layer; returns the new task's router index."""
        (index,) = {layer.router.add_task() for layer in self.layers.values()}  # same in all
        return index

    def begin_task(self, task: Task, index: int) -> None:
        router = self.add_router()
        for name, layer in self.layers.items():
            layer.counts.zero_()
            for e, expert in enumerate(layer.experts.experts):
                expert.requires_grad_(e not in self.frozen[name])
            for t, (gate, noise) in enumerate(
                zip(layer.router.gates, layer.router.noise, strict=True)
            ):
                gate.requires_grad_(t == router)
                noise.requires_grad_(t == router)
        self._router = router

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, images: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
        with routing(self.model, self._router):
            loss = self.task_loss(self.encode_images(images), labels, task)
        if self.options.balance_loss:
            loss = loss + sum(layer.aux_loss for layer in self.layers.values())
        return loss

    def end_task(self, task: Task, index: int) -> None:
        for layer in self.layers.values():  # each process counted its own slice of the batches
            distributed.all_reduce_sum(layer.counts)
        counts = {name: layer.counts.tolist() for name, layer in self.layers.items()}
        for name, c in counts.items():
            top = sorted(range(len(c)), key=lambda e: (-c[e], e))[: self.options.freeze_per_task]
            self.frozen[name].update(top)
        self.selections.append(counts)
        self.frozen_history.append({n: sorted(f) for n, f in self.frozen.items()})

    def record(self, tasks: list[Task]) -> dict[str, Any]:
        return {"selections": self.selections, "frozen_history": self.frozen_history}

    def router_for(self, task: Task) -> int:
        """The router of ``task`` if it was learned, else the newest one."""
        names = [t.name for t in self.learned]
        return names.index(task.name) if task.name in names else max(len(names) - 1, 0)

    def _task_routing(self, task: Task):
        """Route by ``task``'s router; before any task is learned no router exists, so the
        adapters (all zero at the start) are bypassed."""
        if not len(next(iter(self.layers.values())).router):
            return routing(self.model, 0, bypass=True)
        return routing(self.model, self.router_for(task))

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, task: Task) -> torch.Tensor:
        self.model.eval()
        with self._task_routing(task):
            return image_features(self.model, images)

    @torch.no_grad()
    def text_embeddings(self, task: Task) -> torch.Tensor:
        self.model.eval()
        with self._task_routing(task):
            return class_text_features(self.model, self.tokenizer, task)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "frozen": {n: sorted(f) for n, f in self.frozen.items()},
            "selections": self.selections,
            "frozen_history": self.frozen_history,
        }

    def load_state_dict(self, state: dict[str, Any], tasks: dict[str, Task]) -> None:
        for _ in state["learned"]:
            self.add_router()
        super().load_state_dict(state, tasks)
        self.frozen = {n: set(f) for n, f in state["frozen"].items()}
        self.selections, self.frozen_history = state["selections"], state["frozen_history"]

    def count_parameters(self) -> tuple[int, int]:
        """(experts + routers of every task so far, total): the paper's accounting."""
        adapters = sum(p.numel() for layer in self.layers.values() for p in layer.parameters())
        return adapters, sum(p.numel() for p in self.model.parameters())


@dataclass
class MoEDDASOptions(MoEOptions):
    ddas_steps: int = 300
    ddas_code: int = 100
    ddas_quantile: float = 0.95  # share of held-out in-distribution images kept in distribution
    ddas_heldout: float = 0.1  # share of each task's training images kept from its autoencoder
    per_batch: bool = False  # the reference decides once per evaluation batch
    feature_cache_mb: int = 1024  # DDAS features kept between evaluations; 0 turns it off


@register_method
class MoEAdapters(MoEAdaptersTaskId):
    """MoE-Adapters with DDAS: the auto-selector picks each test image's router, or sends it
    to the untouched backbone (adapters bypassed in both towers) when it looks unfamiliar."""

    name = "moe-adapters"
    summary = "MoE adapters with activate-freeze and the DDAS auto-selector (no task id)"
    Options = MoEDDASOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.ddas = DDAS(code_dims=o.ddas_code, steps=o.ddas_steps, quantile=o.ddas_quantile)
        # Frozen by construction, so computed once per test batch, not once per matrix row.
        self._generic = FeatureCache(self._backbone_features, o.feature_cache_mb << 20)

    def _backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        with routing(self.model, 0, bypass=True):
            return self.ddas.features(self.model, images)

    def generic_features(self, images: torch.Tensor) -> torch.Tensor:
        """DDAS's input: frozen backbone features, every adapter bypassed (cached)."""
        return self._generic(images)

    def end_task(self, task: Task, index: int) -> None:
        super().end_task(task, index)
        generator = torch.Generator().manual_seed(index)
        order = torch.randperm(len(task.train_labels), generator=generator)
        n_held = max(1, int(self.options.ddas_heldout * len(order)))
        feats = self.generic_features(task.train_images)
        self.ddas.fit_task(feats[order[n_held:]], feats[order[:n_held]], generator)

    def _task_routing(self, task: Task):
        """Text of a learned task goes through its own router (what DDAS picks for the task's
        familiar images); any other task's text through the untouched backbone."""
        if task.name in {t.name for t in self.learned}:
            return super()._task_routing(task)
        return routing(self.model, 0, bypass=True)

    def _ddas_route(self, images: torch.Tensor):
        """(chosen router, out-of-distribution flag, embedding) of each image, as DDAS routes it
        (its task is never looked at)."""
        selected, ood = self.ddas.select(self.generic_features(images), self.options.per_batch)
        with routing(self.model, selected, bypass=ood):
            return selected, ood, image_features(self.model, images, batch_size=len(images))

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, task: Task) -> torch.Tensor:
        """Each image routed as DDAS decides."""
        self.model.eval()
        if not len(self.ddas):
            return Method.image_embeddings(self, images, task)
        return self._ddas_route(images)[2]

    @torch.no_grad()
    def predict(self, images: torch.Tensor, task: Task) -> torch.Tensor:
        self.model.eval()
        if not len(self.ddas):
            return Method.predict(self, images, task)
        selected, ood, image = self._ddas_route(images)
        logits = torch.empty(len(images), task.num_classes)
        for router, bypass in {(int(t), bool(o)) for t, o in zip(selected, ood, strict=True)}:
            rows = (selected == router) & (ood == bypass)
            with routing(self.model, router, bypass=bypass):  # the zero-shot head when bypassing
                text = class_text_features(self.model, self.tokenizer, task)
            logits[rows] = image[rows] @ text.T
        return logits

    def record(self, tasks: list[Task]) -> dict[str, Any]:
        reports = {}
        for mode in ("per_sample", "per_batch"):
            r = self.selection_report(tasks, per_batch=mode == "per_batch")
            r["best_errors"] = {k: v.round(6).tolist() for k, v in r["best_errors"].items()}
            reports[mode] = r
        return {**super().record(tasks), "ddas": reports}

    @torch.no_grad()
    def selection_report(self, tasks: list[Task], per_batch: bool | None = None) -> dict[str, Any]:
        """How DDAS routes each task's test images: the winning reconstruction errors, the
        confusion (true task x chosen router or backbone) and the share chosen correctly
        (its own router for a learned task, the backbone for one not learned yet)."""
        per_batch = self.options.per_batch if per_batch is None else per_batch
        learned = [t.name for t in self.learned]
        report: dict[str, Any] = {
            "best_errors": {},
            "confusion": [],
            "correct": {},
            "learned": learned,
            "threshold": float(self.ddas.threshold),
        }
        for task in tasks:
            errors = self.ddas.errors(self.generic_features(task.test_images))
            selected, ood = self.ddas.select_from_errors(errors, per_batch)
            report["best_errors"][task.name] = errors.min(dim=1).values.numpy()
            report["confusion"].append(selection_confusion(selected, ood, len(learned)).tolist())
            own = learned.index(task.name) if task.name in learned else None
            right = ood if own is None else (selected == own) & ~ood
            report["correct"][task.name] = 100.0 * right.float().mean().item()
        return report

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "ddas": self.ddas.state_dict(),
            "ddas_heldout": self.ddas.heldout,
        }

    def load_state_dict(self, state: dict[str, Any], tasks: dict[str, Task]) -> None:
        super().load_state_dict(state, tasks)
        for heldout in state["ddas_heldout"]:
            self.ddas.autoencoders.append(
                TaskAutoencoder(heldout.shape[1], self.options.ddas_code)
                .eval()
                .requires_grad_(False)
            )
        self.ddas.load_state_dict(state["ddas"])
        self.ddas.heldout = list(state["ddas_heldout"])
