"""The ATLAS protocol on the embedded world: a mixed upstream stream, then low-shot downstream.

Upstream, one continual stream mixes multi-modal tasks (image-text matching, closed-answer VQA)
and uni-modal ones (text-only topic classification, image classification), in two orders:
multi-modal first and uni-modal first, as in the paper. Every upstream task is evaluated after
each upstream task (an accuracy matrix), for ATLAS and for continual full fine-tuning with the
same formats, heads and step counts; upstream forgetting is the accuracy right after a task
minus the accuracy after the whole stream.

Downstream, each held-out task (3-way visual entailment, text-only counting, image
classification of emoji vehicles) is learned *low-shot* from a copy of the final upstream
ATLAS model, with stage 1 only, stage 2 only or both stages (the ablation), and from the
pretrained backbone with one fresh adapter (the reference point: transfer = accuracy minus the
fresh adapter's). Each order's results are cached atomically as one JSON file under
``clviz.engine.results_root()/atlas/``, keyed by a hash of the configuration.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from clviz.atlas.formats import TaskFormat, make_format
from clviz.backbone import load_backbone
from clviz.engine import results_root, task_seed
from clviz.io import write_json
from clviz.methods.atlas import Atlas, AtlasOptions
from clviz.methods.base import Method, TrainConfig
from clviz.world.multimodal import list_pair_families, make_pair_task
from clviz.world.tasks import few_shot, make_task

ORDERS: dict[str, tuple[str, ...]] = {
    "multi-first": ("matching", "vqa", "topics", "emoji-animals"),
    "uni-first": ("topics", "emoji-animals", "matching", "vqa"),
}
DOWNSTREAM = ("entailment", "howmany", "emoji-vehicles")
ABLATIONS = ("stage1", "stage2", "both")


@dataclass(frozen=True)
class ProtocolConfig:
    """Budgets of one protocol run. Upstream tasks: ``stage2_steps`` with a new adapter, plus
    ``stage1_steps`` of experience learning from the second task on; fine-tuning gets the same
    number of steps per task. Downstream tasks: ``shots`` training examples per class."""

    order: str = "multi-first"
    seed: int = 0
    train_per_class: int = 24
    test_per_class: int = 20
    shots: int = 8
    stage1_steps: int = 20
    stage2_steps: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    finetune_lr: float = 1e-5
    bottleneck: int = 16

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def fast_config(order: str = "multi-first") -> ProtocolConfig:
    """Tiny budgets for tests and ``CLVIZ_FAST=1`` notebooks."""
    return ProtocolConfig(
        order, train_per_class=4, test_per_class=3, shots=2, stage1_steps=2, stage2_steps=3
    )


def build_task(name: str, seed: int, per_class: int, test_per_class: int):
    """A pair-family task or a classification task of the embedded world, by name."""
    if name in list_pair_families():
        return make_pair_task(name, seed, train_per_class=per_class, test_per_class=test_per_class)
    return make_task(name, seed, train_per_class=max(per_class, 1), test_per_class=test_per_class)


def downstream_task(name: str, config: ProtocolConfig):
    """The low-shot version of a downstream task (same test split as the full task)."""
    if name in list_pair_families():
        return build_task(name, config.seed, config.shots, config.test_per_class)
    full = build_task(name, config.seed, config.train_per_class, config.test_per_class)
    return few_shot(full, config.shots, config.seed)


class FormatFineTune(Method):
    """Continual full fine-tuning on task formats (the protocol's forgetting baseline): every
    weight but the logit scale, plus each task's own head, at ``lr``."""

    name = "finetune-formats"

    def __init__(self, model, tokenizer, train: TrainConfig, lr: float):
        super().__init__(model, tokenizer, train)
        self.lr, self.heads = lr, {}

    def learn_format(self, fmt: TaskFormat, steps: int, generator: torch.Generator) -> None:
        head = self.heads[fmt.name] = fmt.make_head()
        if head is not None:
            fmt.init_head(self.model, head)
        params = [p for n, p in self.model.named_parameters() if n != "logit_scale"]
        params += list(head.parameters()) if head is not None else []

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            logits = fmt.logits(self.model, "train", idx, head)
            return F.cross_entropy(
                logits, fmt.train_labels[idx], label_smoothing=self.train_cfg.label_smoothing
            )

        self.optimize(
            params, self.lr, steps, len(fmt.train_labels), batch_loss, generator, "", False
        )

    @torch.no_grad()
    def format_accuracy(self, fmt: TaskFormat) -> float:
        self.model.eval()
        head = self.heads.get(fmt.name)
        if head is None and fmt.name not in self.heads:  # not learned yet: an untrained head
            head = fmt.make_head()
            if head is not None:
                fmt.init_head(self.model, head)
        return fmt.accuracy(self.model, head)


def _atlas(config: ProtocolConfig, stages: str = "both") -> Atlas:
    model, _, tokenizer = load_backbone()
    train = TrainConfig(steps=config.stage2_steps, batch_size=config.batch_size, lr=config.lr)
    options = AtlasOptions(
        bottleneck=config.bottleneck,
        lr=config.lr,
        stage1_steps=config.stage1_steps,
        stage2_steps=config.stage2_steps,
        stages=stages,
    )
    return Atlas(model, tokenizer, train, options)


def run_upstream(config: ProtocolConfig) -> tuple[Atlas, dict[str, Any]]:
    """ATLAS and continual fine-tuning on the upstream stream of ``config.order``."""
    if config.order not in ORDERS:
        raise ValueError(f"unknown order {config.order!r}; valid orders: {', '.join(ORDERS)}")
    names = ORDERS[config.order]
    method = _atlas(config)
    formats = [
        make_format(
            build_task(n, config.seed, config.train_per_class, config.test_per_class),
            method.tokenizer,
        )
        for n in names
    ]
    zero_shot = [method.format_accuracy(f) if f.make_head() is None else None for f in formats]
    model, _, tokenizer = load_backbone()
    finetune = FormatFineTune(
        model, tokenizer, TrainConfig(batch_size=config.batch_size), config.finetune_lr
    )
    atlas_rows, ft_rows, stats = [], [], []
    for i, fmt in enumerate(formats):
        torch.manual_seed(task_seed(config.seed, i))
        method.begin_format(fmt)
        s = method.learn_format(
            fmt, torch.Generator().manual_seed(task_seed(config.seed, i)), False
        )
        method.alphas[fmt.name] = method.measure_alphas(fmt)
        atlas_rows.append([method.format_accuracy(f) for f in formats])
        stats.append(s)
        torch.manual_seed(task_seed(config.seed, i))
        gen = torch.Generator().manual_seed(task_seed(config.seed, i))
        finetune.learn_format(fmt, s["steps"], gen)
        ft_rows.append([finetune.format_accuracy(f) for f in formats])
    result = {
        "tasks": list(names),
        "modality": [f.modality for f in formats],
        "zero_shot": zero_shot,
        "atlas": atlas_rows,
        "finetune": ft_rows,
        "task_stats": stats,
        "record": method.alpha_record(),
    }
    return method, result


def forgetting(rows: list[list[float]]) -> list[float]:
    """Per task: accuracy right after learning it minus accuracy after the whole stream."""
    return [rows[i][i] - rows[-1][i] for i in range(len(rows))]


def run_downstream(upstream: Atlas, config: ProtocolConfig) -> dict[str, Any]:
    """Each downstream task learned low-shot: from the upstream model per ablation, and from
    the pretrained backbone with a fresh adapter."""
    out: dict[str, Any] = {"tasks": list(DOWNSTREAM), "modality": [], "shares": {}}
    for stages in (*ABLATIONS, "fresh"):
        out[stages] = []
        out["shares"][stages] = []
        for i, name in enumerate(DOWNSTREAM):
            if stages == "fresh":
                learner = _atlas(config)
            else:
                learner = copy.deepcopy(upstream)
                learner.options = replace(learner.options, stages=stages)
            fmt = make_format(downstream_task(name, config), learner.tokenizer)
            seed = task_seed(config.seed, 100 + i)
            torch.manual_seed(seed)
            learner.begin_format(fmt)
            learner.learn_format(fmt, torch.Generator().manual_seed(seed), False)
            learner.alphas[fmt.name] = learner.measure_alphas(fmt)
            out[stages].append(learner.format_accuracy(fmt))
            out["shares"][stages].append(learner.experience_share(fmt.name))
            if stages == "fresh":
                out["modality"].append(fmt.modality)
    return out


def protocol_path(config: ProtocolConfig, root: str | Path | None = None) -> Path:
    base = Path(root) if root is not None else results_root()
    return base / "atlas" / f"protocol_{config.order}_seed{config.seed}_{config.digest()}.json"


def run_protocol(config: ProtocolConfig, root: str | Path | None = None) -> dict[str, Any]:
    """Upstream and downstream results of one order; cached (atomically) by config hash."""
    path = protocol_path(config, root)
    if path.is_file():
        return json.loads(path.read_text())
    started = time.perf_counter()
    method, upstream = run_upstream(config)
    downstream = run_downstream(method, config)
    result = {
        "config": asdict(config),
        "upstream": upstream,
        "downstream": downstream,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(path, result)
    return result


def ablation_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (order, ablation): downstream low-shot accuracy per task and its mean, and
    the transfer (mean accuracy minus the fresh adapter's)."""
    rows = []
    for order, r in results.items():
        d = r["downstream"]
        fresh = sum(d["fresh"]) / len(d["fresh"])
        for stages in (*ABLATIONS, "fresh"):
            mean = sum(d[stages]) / len(d[stages])
            row = {"order": order, "stages": stages}
            row.update({t: round(a, 1) for t, a in zip(d["tasks"], d[stages], strict=True)})
            row.update(mean=round(mean, 2), transfer=round(mean - fresh, 2))
            rows.append(row)
    return rows


def forgetting_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per order and method: mean upstream forgetting, final mean accuracy, and per task."""
    rows = []
    for order, r in results.items():
        u = r["upstream"]
        for method in ("atlas", "finetune"):
            f = forgetting(u[method])
            row = {"order": order, "method": method}
            row.update({t: round(v, 1) for t, v in zip(u["tasks"], f, strict=True)})
            final = u[method][-1]
            row.update(forgetting=round(sum(f) / len(f), 2), last=round(sum(final) / len(final), 2))
            rows.append(row)
    return rows
