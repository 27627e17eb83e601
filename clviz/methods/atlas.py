"""ATLAS (Li et al., arXiv 2410.10923; reference code lihong2303/ATLAS on ViLT), on CLIP.

The backbone is frozen (both towers, the logit scale too). Every block of both towers gets two
ATLAS sites (:mod:`clviz.atlas.adapters`). Each new task ``t`` is learned in two stages:

1. *Experience-based learning* (skipped while no adapter exists, i.e. for the first task): only
   the old adapters are present, frozen; the task's query set over them (started from the
   newest task's set) and its head train, the queries with ``query_lr_scale`` (100, as in the
   reference) times the learning rate, plus ``ortho_weight`` (0.1) x the orthogonality penalty
   ``mean((Q Q^T - I)^2)`` of the task's queries, summed over every site.
2. *Novel knowledge expansion*: a new adapter with its key and the task's query for it is added
   at every site; those and the head train at the plain learning rate, everything from stage 1
   is frozen, and the penalty covers the task's queries and all keys.

One query set is stored per task. Evaluation of a learned task uses its own query set; a task not
learned yet uses the newest one (as ``moe-adapters-taskid`` routes unseen tasks with the newest
router). ``stages`` runs "both" (default), "stage1" only (no new adapter; a learner without any
adapter still adds one, as there is nothing to reuse) or "stage2" only (the old adapters keep the
newest task's queries, frozen) for the ablations.

Budgets on the engine (our choice): stage 2 gets ``TrainConfig.steps`` (the budget every other
method has to learn a task), stage 1 half of it unless ``stage1_steps`` is set, so the first
task takes 100 steps and every later one 150. The head of a classification task is its class
prompts through the adapted text tower, no extra weights; matching/entailment tasks of the
ATLAS protocol add a 3-parameter-per-class score head (:mod:`clviz.atlas.formats`).

The method is written for any :class:`~clviz.atlas.formats.TaskFormat` (``begin_format``,
``learn_format``, ``format_accuracy``), so the ATLAS protocol's mixed multi-modal/uni-modal
stream uses the very same code as the engine's classification stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clviz.atlas.adapters import (
    AtlasSite,
    attach_atlas,
    recording_alphas,
    site_info,
    using_queries,
)
from clviz.atlas.formats import ClassificationFormat, ScoreHead, TaskFormat
from clviz.methods.base import Method, register_method
from clviz.world.tasks import Task
from clviz.zeroshot import class_text_features, image_features

STAGES = ("both", "stage1", "stage2")


@dataclass
class AtlasOptions:
    """ATLAS's hyper-parameters. ``stage1_steps`` None: half of ``TrainConfig.steps``;
    ``stage2_steps`` None: ``TrainConfig.steps``. The bottleneck is width / 8 on the tiny CLIP
    (the reference: 48 of 768, width / 16)."""

    bottleneck: int = 16
    lr: float = 1e-3
    query_lr_scale: float = 100.0
    ortho_weight: float = 0.1
    stage1_steps: int | None = None
    stage2_steps: int | None = None
    stages: str = "both"


@register_method
class Atlas(Method):
    name = "atlas"
    summary = "two-stage adapters: reuse old adapters by per-task queries, then add a new one"
    Options = AtlasOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        if o.stages not in STAGES:
            raise ValueError(f"stages must be one of {', '.join(STAGES)}, got {o.stages!r}")
        self.sites: dict[str, AtlasSite] = attach_atlas(self.model, o.bottleneck)
        self.names: list[str] = []  # one query set per task, in order
        self.heads: dict[str, nn.Module | None] = {}
        self.adapter_owner: list[str] = []  # the task that added adapter j
        self.alphas: dict[str, dict[str, list[float] | None]] = {}  # per task, on its test data
        self.stages_run: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ bookkeeping
    @property
    def num_adapters(self) -> int:
        return len(self.adapter_owner)

    def query_index(self, name: str) -> int | None:
        """The query set of task ``name`` if learned, else the newest (None: none yet)."""
        if name in self.names:
            return self.names.index(name)
        return len(self.names) - 1 if self.names else None

    def steps(self, stage: int) -> int:
        o, base = self.options, self.train_cfg.steps
        if stage == 1:
            return base // 2 if o.stage1_steps is None else o.stage1_steps
        return base if o.stage2_steps is None else o.stage2_steps

    def stages_for_next(self) -> list[int]:
        """The stages the next task runs: stage 1 needs adapters to reuse."""
        if not self.num_adapters:
            return [2]
        return {"both": [1, 2], "stage1": [1], "stage2": [2]}[self.options.stages]

    # ------------------------------------------------------------------ stages
    def begin_format(self, fmt: TaskFormat) -> int:
        """A query set (copied from the newest) and a head for a new task; returns its index."""
        if fmt.name in self.names:
            raise ValueError(f"task {fmt.name!r} was already learned; names must be unique")
        newest = len(self.names) - 1 if self.names else None
        indices = {site.add_task(newest) for site in self.sites.values()}
        self.names.append(fmt.name)
        self.heads[fmt.name] = fmt.make_head()
        (index,) = indices
        return index

    def stage_parameters(self, stage: int, task: int) -> list[dict[str, Any]]:
        """Freeze everything, then unfreeze what ``stage`` trains; returns param groups."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        head = self.heads[self.names[task]]
        head_params = list(head.parameters()) if head is not None else []
        if stage == 1:
            queries = [site.exp_queries[task] for site in self.sites.values()]
            groups = [{"params": queries, "lr": self.options.lr * self.options.query_lr_scale}]
        else:
            new = []
            for site in self.sites.values():
                new += [*site.adapters[-1].parameters(), site.keys[-1], site.new_queries[task]]
            groups = [{"params": new, "lr": self.options.lr}]
        if head_params:
            groups.append({"params": head_params, "lr": self.options.lr})
        for g in groups:
            for p in g["params"]:
                p.requires_grad_(True)
        return groups

    def ortho_loss(self, task: int, keys: bool) -> torch.Tensor:
        """The summed orthogonality penalty of every site (unweighted)."""
        return sum(site.ortho_loss(task, keys) for site in self.sites.values())

    def format_loss(self, fmt: TaskFormat, idx: torch.Tensor, stage: int, task: int):
        """Cross-entropy (with the suite's label smoothing) plus the weighted penalty."""
        with using_queries(self.sites, task):
            logits = fmt.logits(self.model, "train", idx, self.heads[fmt.name])
        loss = F.cross_entropy(
            logits,
            fmt.train_labels[idx].to(logits.device),
            label_smoothing=self.train_cfg.label_smoothing,
        )
        return loss + self.options.ortho_weight * self.ortho_loss(task, keys=stage == 2)

    def learn_format(
        self, fmt: TaskFormat, generator: torch.Generator, progress: bool = True
    ) -> dict[str, float]:
        """Run the task's stages (after :meth:`begin_format`); returns per-stage statistics."""
        task = self.names.index(fmt.name)
        if task != len(self.names) - 1:
            raise ValueError(f"{fmt.name!r} is not the newest task; call begin_format first")
        stages = self.stages_for_next()
        head = self.heads[fmt.name]
        if head is not None:
            with using_queries(self.sites, task):
                fmt.init_head(self.model, head)
        stats: dict[str, float] = {"steps": 0}
        for stage in stages:
            if stage == 2:
                for site in self.sites.values():
                    site.add_adapter(task)
                self.adapter_owner.append(fmt.name)
            groups = self.stage_parameters(stage, task)
            steps = self.steps(stage)
            if steps == 0:
                continue
            s = self.optimize(
                groups,
                self.options.lr,
                steps,
                len(fmt.train_labels),
                lambda idx, stage=stage: self.format_loss(fmt, idx, stage, task),
                generator,
                desc=f"{self.name} · {fmt.name} · stage {stage}",
                progress=progress,
            )
            stats["steps"] += s["steps"]
            stats.update({f"stage{stage}_{k}": v for k, v in s.items() if k != "steps"})
            stats.update(first_loss=stats.get("first_loss", s["first_loss"]))
            stats["final_loss"] = s["final_loss"]
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.stages_run[fmt.name] = stages
        self.model.eval()
        return stats

    @torch.no_grad()
    def format_accuracy(self, fmt: TaskFormat) -> float:
        """Test accuracy of ``fmt`` with its own query set and head (if not learned: the newest
        query set and, for a matching task, a freshly initialised score head)."""
        self.model.eval()
        with using_queries(self.sites, self.query_index(fmt.name)):
            head = self.heads.get(fmt.name)
            if head is None and fmt.name not in self.heads:  # not learned: an untrained head
                head = fmt.make_head()
                if head is not None:
                    fmt.init_head(self.model, head)
            return fmt.accuracy(self.model, head)

    @torch.no_grad()
    def measure_alphas(self, fmt: TaskFormat) -> dict[str, list[float] | None]:
        """Mean alpha per site and adapter over ``fmt``'s test examples (its query set)."""
        self.model.eval()
        index = self.query_index(fmt.name)
        with using_queries(self.sites, index), recording_alphas(self.sites) as alphas:
            fmt.predict(self.model, "test", self.heads.get(fmt.name))
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

    # ------------------------------------------------------------------ engine life cycle
    def begin_task(self, task: Task, index: int) -> None:
        self._format = ClassificationFormat(task, self.tokenizer)
        self.begin_format(self._format)

    def train_task(
        self, task: Task, index: int, generator: torch.Generator, progress: bool = True
    ) -> dict[str, float]:
        return self.learn_format(self._format, generator, progress)

    def end_task(self, task: Task, index: int) -> None:
        self.alphas[task.name] = self.measure_alphas(self._format)

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, task: Task) -> torch.Tensor:
        """Images through the adapters weighted by ``task``'s query set."""
        self.model.eval()
        with using_queries(self.sites, self.query_index(task.name)):
            return image_features(self.model, images)

    @torch.no_grad()
    def text_embeddings(self, task: Task) -> torch.Tensor:
        self.model.eval()
        with using_queries(self.sites, self.query_index(task.name)):
            return class_text_features(self.model, self.tokenizer, task)

    def record(self, tasks: list[Task]) -> dict[str, Any]:
        return self.alpha_record()

    def alpha_record(self) -> dict[str, Any]:
        """Alphas per task x site x adapter, who owns each adapter, the experience shares."""
        return {
            "query_sets": list(self.names),
            "adapter_owner": list(self.adapter_owner),
            "stages": dict(self.stages_run),
            "sites": {name: list(site_info(name)) for name in self.sites},
            "alphas": self.alphas,
            "experience_share": {n: self.experience_share(n) for n in self.alphas},
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "structure": {n: s.structure() for n, s in self.sites.items()},
            "names": list(self.names),
            "adapter_owner": list(self.adapter_owner),
            "heads": {n: h if h is None else h.state_dict() for n, h in self.heads.items()},
            "alphas": self.alphas,
            "stages_run": self.stages_run,
        }

    def load_state_dict(self, state: dict[str, Any], tasks: dict[str, Task]) -> None:
        for name, structure in state["structure"].items():
            self.sites[name].rebuild(structure)
        super().load_state_dict(state, tasks)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.names, self.adapter_owner = list(state["names"]), list(state["adapter_owner"])
        self.heads = {}
        for name, h in state["heads"].items():
            head = None
            if h is not None:
                head = ScoreHead(len(h["w"]))
                head.load_state_dict(h)
                head.requires_grad_(False)
            self.heads[name] = head
        self.alphas, self.stages_run = state["alphas"], state["stages_run"]

    def count_parameters(self) -> tuple[int, int]:
        """(adapters, keys, every task's queries and heads so far; total)."""
        own = sum(p.numel() for s in self.sites.values() for p in s.parameters())
        own += sum(p.numel() for h in self.heads.values() if h is not None for p in h.parameters())
        return own, sum(p.numel() for p in self.model.parameters())
