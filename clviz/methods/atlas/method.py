"""ATLAS (Li et al., arXiv 2410.10923; reference code lihong2303/ATLAS on ViLT), on CLIP.

The backbone is frozen (both towers, the logit scale too). Every block of both towers gets two
ATLAS sites (:mod:`clviz.methods.atlas.site`). Each new task ``t`` is learned in two stages:

1. *Experience-based learning* (skipped while no adapter exists, i.e. for the first task): only
   the old adapters are present, frozen; the task's query set over them (started from the
   newest task's set) and its head train, the queries with ``query_lr_scale`` (100, as in the
   reference) times the learning rate, plus ``ortho_weight`` (0.1) x the orthogonality penalty
   ``mean((Q Q^T - I)^2) / (rows * d)`` of the task's queries, summed over every site (the
   reference's weight is 0.1 at most sites, 1e-7 at some: ``Vilt/vilt.py``).
2. *Novel knowledge expansion*: a new adapter with its key and the task's query for it is added
   at every site; those and the head train at the plain learning rate, everything from stage 1
   is frozen, and the penalty covers the task's queries and all keys.

One query set is stored per task. A learned task is evaluated with its own query set; a task
not learned yet with the newest one (as ``moe-adapters-taskid`` routes unseen tasks with the
newest router). ``stages`` runs "both" (default), "stage1" only (no new adapter; a learner
without any adapter still adds one, as there is nothing to reuse) or "stage2" only (the old
adapters keep the newest task's queries, frozen) for the ablations.

Budgets (our choice): stage 2 gets ``TrainConfig.steps`` (the budget every other method has to
learn a task) times ``stage2_share`` (1), stage 1 that budget times ``stage1_share`` (0.5),
unless ``stage1_steps`` / ``stage2_steps`` fix them, so the first task takes 100 steps and
every later one 150. The embedded world's teaching setting
(:data:`clviz.experiments.profiles.TEACHING_OPTIONS`) gives ATLAS shares 1 and 2 at lr 5e-3,
with the reference's optimiser (warm-up and linear decay, AdamW betas (0.9, 0.98), eps 1e-4,
weight decay 0.01, plain cross-entropy): its sites start away from the backbone (each outputs
``(sum_j alpha_j) u``, see :mod:`clviz.methods.atlas.site`), and at a lesson's 40 steps a task
it needed that much to score above zero-shot on every task right after learning it, on every
seed.

A classification task's head is its class prompts through the adapted text tower, no extra
weights; a matching or entailment task adds a
:class:`~clviz.core.formats.ScoreHead` (a weight and a bias per class, one shared centre).
ATLAS learns every task format, so the mixed multi-modal streams of the ATLAS protocol use this
very class through the same loop.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from clviz.core.formats import Batch, TaskFormat
from clviz.core.method import Method, Stage, TaskState, TowerShape
from clviz.core.result import MethodRecord, register_record
from clviz.core.validation import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, bounded
from clviz.errors import InputError
from clviz.methods.atlas.site import AtlasSite, attach_atlas, recording_alphas, site_info
from clviz.methods.registry import register_method
from clviz.methods.sites import use_task

STAGES = ("both", "stage1", "stage2")


@dataclass
class AtlasOptions:
    """ATLAS's hyper-parameters. ``stage1_steps`` None: ``stage1_share`` of the task's
    ``TrainConfig`` steps; ``stage2_steps`` None: ``stage2_share`` of them. The bottleneck is
    width / 8 on the tiny CLIP (the reference: 48 of 768, width / 16)."""

    bottleneck: int = bounded(16, AT_LEAST_ONE)
    lr: float = bounded(1e-3, POSITIVE)
    query_lr_scale: float = bounded(100.0, POSITIVE)
    ortho_weight: float = bounded(0.1, NON_NEGATIVE)
    stage1_steps: int | None = bounded(None, NON_NEGATIVE, count=True)
    stage2_steps: int | None = bounded(None, NON_NEGATIVE, count=True)
    stage1_share: float = bounded(0.5, NON_NEGATIVE)
    stage2_share: float = bounded(1.0, NON_NEGATIVE)
    stages: str = "both"

    def __post_init__(self) -> None:
        if self.stages not in STAGES:
            raise InputError(f"stages must be one of {', '.join(STAGES)}, got {self.stages!r}")


@register_record
@dataclass
class AlphaRecord(MethodRecord):
    """Alphas per task, site and adapter; who added each adapter; which stages each task ran;
    the share of each task's alpha that went to old adapters (experience)."""

    kind = "atlas"
    query_sets: list[str]
    adapter_owner: list[str]
    stages: dict[str, list[int]]
    sites: dict[str, list[Any]]  # site name -> [tower, layer, slot]
    alphas: dict[str, dict[str, list[float] | None]]
    experience_share: dict[str, float | None]


@dataclass
class AtlasState(TaskState):
    query_set: int  # the task's query set in every site
    stages: list[int]  # the stages it runs (1: experience, 2: a new adapter)
    stage: int = 0  # the stage being trained


@register_method
class Atlas(Method):
    name = "atlas"
    listing_order = 10
    relative_cost = 1.7
    summary = "two-stage adapters: reuse old adapters by per-task queries, then add a new one"
    Options = AtlasOptions

    @classmethod
    def added_parameters(cls, options: Any, shape: dict[str, TowerShape], tasks: int) -> int:
        """Two sites per block of both towers, each with one adapter, key and query per task."""
        r = options.bottleneck
        return sum(
            2 * s.layers * tasks * (2 * s.width * r + s.width + r + 2 * s.width)
            for s in shape.values()
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        device = self.device  # the backbone's, before the sites are attached
        self.sites: dict[str, AtlasSite] = attach_atlas(self.model, self.options.bottleneck)
        self.model.to(device)
        self.query_sets: list[str] = []  # the task of each query set, in order
        self.adapter_owner: list[str] = []  # the task that added adapter j
        self.alphas: dict[str, dict[str, list[float] | None]] = {}  # per task, on its test data
        self.stages_run: dict[str, list[int]] = {}

    @property
    def num_adapters(self) -> int:
        return len(self.adapter_owner)

    def query_index(self, task: TaskFormat) -> int | None:
        """The query set of ``task`` if it has one, else the newest (None: none yet)."""
        if task.name in self.query_sets:
            return self.query_sets.index(task.name)
        return len(self.query_sets) - 1 if self.query_sets else None

    def stage_steps(self, stage: int, index: int) -> int:
        o, base = self.options, self.train_config.steps_for(index)
        if stage == 1:
            return int(base * o.stage1_share) if o.stage1_steps is None else o.stage1_steps
        return int(base * o.stage2_share) if o.stage2_steps is None else o.stage2_steps

    def stages_for_next(self) -> list[int]:
        """The stages the next task runs: stage 1 needs adapters to reuse."""
        if not self.num_adapters:
            return [2]
        return {"both": [1, 2], "stage1": [1], "stage2": [2]}[self.options.stages]

    # ------------------------------------------------------------------ learning a task
    def begin_task(self, task: TaskFormat, index: int, draws: torch.Generator) -> AtlasState:
        """A query set for the task (copied from the newest) and its head."""
        if task.name in self.query_sets:
            raise InputError(f"task {task.name!r} was already learned; names must be unique")
        newest = len(self.query_sets) - 1 if self.query_sets else None
        (query_set,) = {site.add_task(newest) for site in self.sites.values()}
        self.model.to(self.device)  # new parameters are drawn on the CPU (same numbers anywhere)
        self.query_sets.append(task.name)
        self.add_head(task)
        return AtlasState(task, index, draws, query_set, self.stages_for_next())

    def stage_parameters(self, stage: int, state: AtlasState) -> list[dict[str, Any]]:
        """Freeze everything, then unfreeze what ``stage`` trains; returns param groups."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        head = self.heads.get(state.task.name)
        head_params = list(head.parameters()) if head is not None else []
        task = state.task
        if stage == 1:
            queries = [site.exp_queries[state.query_set] for site in self.sites.values()]
            groups = [{"params": queries, "lr": self.rate(task, self.options.query_lr_scale)}]
        else:
            new = []
            for site in self.sites.values():
                new += [*site.adapters[-1].parameters(), site.keys[-1]]
                new.append(site.new_queries[state.query_set])
            groups = [{"params": new, "lr": self.rate(task)}]
        if head_params:
            groups.append({"params": head_params, "lr": self.rate(task)})
        for g in groups:
            for p in g["params"]:
                p.requires_grad_(True)
        return groups

    def stages(self, state: AtlasState) -> Iterator[Stage]:
        """Experience learning (1), then novel knowledge (2); each changes the model only when
        the loop begins it (:meth:`begin_stage`)."""
        for stage in state.stages:
            yield Stage(
                functools.partial(self.stage_parameters, stage, state),
                self.rate(state.task),
                self.stage_steps(stage, state.index),
                name=f"stage {stage}",
                begin=functools.partial(self.begin_stage, stage, state),
            )

    def begin_stage(self, stage: int, state: AtlasState) -> None:
        """Stage 2 (novel knowledge) gives the task its own adapter, key and query."""
        state.stage = stage
        if stage == 2:
            for site in self.sites.values():
                site.add_adapter(state.query_set)
            self.model.to(self.device)
            self.adapter_owner.append(state.task.name)

    def ortho_loss(self, state: AtlasState, keys: bool) -> torch.Tensor:
        """The summed orthogonality penalty of every site (unweighted)."""
        return sum(site.ortho_loss(state.query_set, keys) for site in self.sites.values())

    def loss(self, batch: Batch, state: AtlasState) -> torch.Tensor:
        """Cross-entropy (with the run's label smoothing: 0 under every profile, the
        reference's plain ``nn.CrossEntropyLoss()``) plus the weighted penalty; the penalty
        covers the keys once the task has its own adapter (stage 2)."""
        penalty = self.ortho_loss(state, keys=state.stage == 2)
        return self.task_loss(batch, state.task) + self.options.ortho_weight * penalty

    def end_task(self, state: AtlasState) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.stages_run[state.task.name] = state.stages
        self.model.eval()
        self.alphas[state.task.name] = self.measure_alphas(state.task)

    # ------------------------------------------------------------------ evaluation
    def context(self, task: TaskFormat) -> AbstractContextManager:
        """Every site with ``task``'s query set (the newest for a task without one)."""
        return use_task(self.sites.values(), self.query_index(task))

    @torch.no_grad()
    def measure_alphas(self, task: TaskFormat) -> dict[str, list[float] | None]:
        """Mean alpha per site and adapter over ``task``'s test examples (its query set)."""
        with recording_alphas(self.sites) as alphas:
            predict = self.predictor(task)  # the class or label texts pass the sites here
            for batch in task.batches("test", 256):
                predict(batch)
        return alphas

    def experience_share(self, name: str) -> float | None:
        """Share of the summed alpha that goes to old adapters (experience) rather than the
        task's own new adapter, averaged over the sites its data passed; our summary."""
        alphas = self.alphas.get(name)
        if not alphas:
            return None
        owns = name in self.adapter_owner
        shares = []
        for a in alphas.values():
            if a:
                total = sum(a)
                shares.append(1.0 - (a[-1] / total if owns else 0.0) if total > 0 else 0.0)
        return round(sum(shares) / len(shares), 5) if shares else None

    def record(self, tasks: Sequence[TaskFormat] = ()) -> AlphaRecord:
        return AlphaRecord(
            query_sets=list(self.query_sets),
            adapter_owner=list(self.adapter_owner),
            stages=dict(self.stages_run),
            sites={name: list(site_info(name)) for name in self.sites},
            alphas=dict(self.alphas),
            experience_share={n: self.experience_share(n) for n in self.alphas},
        )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "structure": {n: s.structure() for n, s in self.sites.items()},
            "query_sets": list(self.query_sets),
            "adapter_owner": list(self.adapter_owner),
            "alphas": self.alphas,
            "stages_run": self.stages_run,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, structure in state["structure"].items():
            self.sites[name].rebuild(structure)
        self.model.to(self.device)
        super().load_state_dict(state)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.query_sets = list(state["query_sets"])
        self.adapter_owner = list(state["adapter_owner"])
        self.alphas, self.stages_run = state["alphas"], state["stages_run"]

    def count_parameters(self) -> tuple[int, int]:
        """(adapters, keys, every task's queries and heads so far; total)."""
        own = sum(p.numel() for s in self.sites.values() for p in s.parameters())
        own += sum(p.numel() for h in self.heads.values() for p in h.parameters())
        return own, sum(p.numel() for p in self.model.parameters())
