"""The ATLAS protocol on the embedded world: a mixed upstream stream, then low-shot downstream.

Upstream, one continual stream mixes multi-modal tasks (image-text matching, closed-answer VQA)
and uni-modal ones (text-only topic classification, image classification), in two orders:
multi-modal first and uni-modal first, as in the paper. ATLAS and continual full fine-tuning
(``finetune``, with each task's head and the steps ATLAS took on it) each learn the stream
through the one loop (:func:`clviz.core.loop.run_stream`), evaluated on every upstream task
after each; upstream forgetting is the accuracy right after a task minus the accuracy after the
whole stream (:func:`clviz.core.metrics.drop_since_learned`).

Downstream, each held-out task (3-way visual entailment, text-only counting, image
classification of emoji vehicles) is learned *low-shot* from a copy of the final upstream
ATLAS model (restored from its run's last checkpoint), with stage 1 only, stage 2 only or both
stages (the ablation), and from the pretrained backbone with one fresh adapter (the reference
point: transfer = accuracy minus the fresh adapter's).

Each order lives in one folder of the run store: ``upstream-atlas/`` and ``upstream-finetune/``
are ordinary runs (resumable), ``results.json`` the protocol's result.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import dacite

from clviz.backbone import load_backbone
from clviz.core.config import TrainConfig
from clviz.core.device import place
from clviz.core.evaluation import EveryTask, accuracy
from clviz.core.formats import TaskFormat, make_format
from clviz.core.integrity import IntegrityError, read_sealed_json, write_sealed_json
from clviz.core.loop import learn_task, run_stream, task_seed
from clviz.core.metrics import drop_since_learned
from clviz.core.progress import progress_bar
from clviz.core.result import ResultError, RunResult
from clviz.core.store import RunStore
from clviz.errors import InputError
from clviz.experiments.tables import MarkdownTable, markdown_table
from clviz.methods import build_method
from clviz.methods.atlas import Atlas, AtlasOptions
from clviz.world.multimodal import list_pair_families, make_pair_task
from clviz.world.tasks import few_shot, make_task

ORDERS: dict[str, tuple[str, ...]] = {
    "multi-first": ("matching", "vqa", "topics", "emoji-animals"),
    "uni-first": ("topics", "emoji-animals", "matching", "vqa"),
}
DOWNSTREAM = ("entailment", "howmany", "emoji-vehicles")
ABLATIONS = ("stage1", "stage2", "both")
LEARNERS = (*ABLATIONS, "fresh")  # the downstream learners: three ablations and the reference
UPSTREAM = ("atlas", "finetune")


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
    device: str | None = None  # auto | cpu | cuda | cuda:N | mps; None: $CLVIZ_DEVICE or auto

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise InputError(f"unknown order {self.order!r}; valid orders: {', '.join(ORDERS)}")


def fast_config(order: str = "multi-first") -> ProtocolConfig:
    """Tiny budgets for tests and fast-mode notebooks."""
    return ProtocolConfig(
        order, train_per_class=4, test_per_class=3, shots=2, stage1_steps=2, stage2_steps=3
    )


def class_config(order: str = "multi-first") -> ProtocolConfig:
    """Class-mode budgets (``CLVIZ_MODE=class``): half the steps and fewer test images than
    :class:`ProtocolConfig`, the same shots, so notebook 05 fits a lesson."""
    return ProtocolConfig(order, test_per_class=10, stage1_steps=10, stage2_steps=20)


@dataclass
class DownstreamResult:
    """Low-shot accuracy of each downstream task per learner (the three ablations from the
    upstream model, and a fresh adapter on the backbone), with ATLAS's experience share."""

    tasks: list[str]
    modality: list[str]
    accuracy: dict[str, list[float]] = field(default_factory=dict)  # learner -> per task
    shares: dict[str, list[float | None]] = field(default_factory=dict)

    def mean(self, learner: str) -> float:
        return sum(self.accuracy[learner]) / len(self.accuracy[learner])

    def transfer(self, learner: str) -> float:
        """Mean accuracy minus the fresh adapter's."""
        return self.mean(learner) - self.mean("fresh")


@dataclass
class ProtocolResult:
    """One order of the protocol: the two upstream runs and the downstream learners."""

    config: dict[str, Any]
    upstream: dict[str, RunResult]  # "atlas", "finetune"
    downstream: DownstreamResult
    modality: list[str]  # of each upstream task
    seconds: float = 0.0
    config_hash: str = ""
    run_dir: Path | None = None

    @property
    def order(self) -> str:
        return self.config["order"]

    def forgetting(self, learner: str) -> list[float]:
        """Per upstream task: accuracy right after learning it minus after the stream."""
        return drop_since_learned(self.upstream[learner].matrix)

    def save(self, path: str | Path) -> None:
        """The protocol's own numbers; the upstream runs stay in their run folders."""
        data = {
            "config": self.config,
            "downstream": asdict(self.downstream),
            "modality": self.modality,
            "seconds": self.seconds,
            "config_hash": self.config_hash,
        }
        write_sealed_json(path, data, role="results", key=self.config_hash)

    @classmethod
    def load(cls, path: str | Path) -> ProtocolResult:
        """The protocol's numbers, after checking the file's checksum (a damaged file is a
        :class:`ResultError` naming it), and its upstream runs."""
        path = Path(path)
        try:
            data, _ = read_sealed_json(
                path, "delete the folder to rebuild it", role="results", key=None
            )
            downstream = dacite.from_dict(DownstreamResult, data["downstream"])
        except IntegrityError as err:
            raise ResultError(str(err)) from None
        except (OSError, ValueError, KeyError, dacite.DaciteError) as err:
            raise ResultError(
                f"cannot read the protocol result {path} ({err}); delete the folder to rebuild it"
            ) from None
        upstream = {
            u: RunResult.load(path.parent / f"upstream-{u}" / "results.json") for u in UPSTREAM
        }
        return cls(
            data["config"],
            upstream,
            downstream,
            data["modality"],
            data["seconds"],
            data["config_hash"],
            path.parent,
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


def atlas_learner(config: ProtocolConfig, stages: str = "both") -> Atlas:
    """ATLAS with the protocol's budgets, on a freshly loaded backbone."""
    model, _, tokenizer = load_backbone(device=config.device)
    train = TrainConfig(steps=config.stage2_steps, batch_size=config.batch_size, lr=config.lr)
    options = AtlasOptions(
        bottleneck=config.bottleneck,
        lr=config.lr,
        stage1_steps=config.stage1_steps,
        stage2_steps=config.stage2_steps,
        stages=stages,
    )
    return Atlas(model, tokenizer, train, options)


def upstream_formats(config: ProtocolConfig, tokenizer) -> list[TaskFormat]:
    """The upstream stream of ``config.order``, each task in its format."""
    return [
        make_format(
            build_task(n, config.seed, config.train_per_class, config.test_per_class), tokenizer
        )
        for n in ORDERS[config.order]
    ]


def run_upstream(
    config: ProtocolConfig,
    atlas: Atlas,
    formats: list[TaskFormat],
    folder: Path,
    force: bool = False,
    progress: bool = False,
) -> dict[str, RunResult]:
    """``atlas`` (untrained), then continual fine-tuning with ATLAS's step count on each task,
    learn the upstream stream; ``atlas`` ends as the final upstream model."""
    evaluation = EveryTask(formats)
    identity = asdict(config)
    store = RunStore(folder / "upstream-atlas", {**identity, "learner": "atlas"}, force=force)
    result = store.finished()
    if result is None:
        result = run_stream(
            atlas, formats, evaluation, seed=config.seed, store=store, progress=progress
        )
    else:  # the finished run's last checkpoint is the final upstream model
        atlas.load_state_dict(store.checkpoint()["method"])
    runs = {"atlas": result}

    store = RunStore(folder / "upstream-finetune", {**identity, "learner": "finetune"}, force=force)
    result = store.finished()
    if result is None:
        model, _, tokenizer = load_backbone(device=atlas.device)
        steps = tuple(s.steps for s in runs["atlas"].task_stats)
        train = TrainConfig(batch_size=config.batch_size, lr=config.finetune_lr, task_steps=steps)
        finetune = build_method("finetune", model, tokenizer, train)
        result = run_stream(
            finetune,
            formats,
            evaluation,
            seed=config.seed,
            store=store,
            zero_shot=runs["atlas"].zero_shot,
            progress=progress,
        )
    runs["finetune"] = result
    return runs


def run_downstream(
    upstream: Atlas, config: ProtocolConfig, progress: bool = False
) -> DownstreamResult:
    """Each downstream task learned low-shot: from the upstream model per ablation, and from
    the pretrained backbone with a fresh adapter (one bar over them when ``progress``)."""
    out = DownstreamResult(list(DOWNSTREAM), [])
    bar = progress_bar(
        total=len(LEARNERS) * len(DOWNSTREAM),
        desc=f"{config.order}: downstream",
        unit="task",
        disable=not progress,
    )
    for learner_name in LEARNERS:
        out.accuracy[learner_name], out.shares[learner_name] = [], []
        for i, name in enumerate(DOWNSTREAM):
            bar.set_postfix(learner=learner_name, task=name)
            if learner_name == "fresh":
                learner = atlas_learner(config)
            else:
                learner = copy.deepcopy(upstream)
                learner.options = replace(learner.options, stages=learner_name)
            fmt = make_format(downstream_task(name, config), learner.tokenizer)
            learn_task(
                learner,
                fmt,
                len(learner.query_sets),
                seed=task_seed(config.seed, 100 + i),
                progress=False,
            )
            out.accuracy[learner_name].append(accuracy(learner, fmt))
            out.shares[learner_name].append(learner.experience_share(fmt.name))
            if learner_name == "fresh":
                out.modality.append(fmt.modality)
            bar.update()
    bar.close()
    return out


def protocol_store(
    config: ProtocolConfig, root: str | Path | None = None, force: bool = False
) -> RunStore:
    """``<root>/atlas-protocol/<order>_seed<seed>_<hash>``."""
    return RunStore.named(
        f"{config.order}_seed{config.seed}",
        asdict(config),
        group="atlas-protocol",
        root=root,
        force=force,
        result_type=ProtocolResult,
    )


def run_protocol(
    config: ProtocolConfig,
    root: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = False,
) -> ProtocolResult:
    """Upstream and downstream results of one order (reused when finished)."""
    config, _ = place(config)
    store = protocol_store(config, root, force)
    finished = store.finished()
    if finished is not None:
        return finished
    started = time.perf_counter()
    atlas = atlas_learner(config)
    formats = upstream_formats(config, atlas.tokenizer)
    upstream = run_upstream(config, atlas, formats, store.folder, force, progress)
    downstream = run_downstream(atlas, config, progress)
    result = ProtocolResult(
        asdict(config),
        upstream,
        downstream,
        [f.modality for f in formats],
        round(time.perf_counter() - started, 1),
    )
    return store.save(result)


# ---------------------------------------------------------------------- tables
@dataclass(frozen=True)
class DownstreamRow:
    order: str
    learner: str
    accuracy: list[float]
    mean: float
    transfer: float


@dataclass(frozen=True)
class ForgettingRow:
    order: str
    method: str
    per_task: list[float]
    forgetting: float
    last: float


def downstream_rows(results: dict[str, ProtocolResult]) -> list[DownstreamRow]:
    """One row per (order, learner): low-shot accuracy per downstream task, its mean, and
    the transfer (mean minus the fresh adapter's)."""
    return [
        DownstreamRow(
            order,
            learner,
            r.downstream.accuracy[learner],
            r.downstream.mean(learner),
            r.downstream.transfer(learner),
        )
        for order, r in results.items()
        for learner in LEARNERS
    ]


def forgetting_rows(results: dict[str, ProtocolResult]) -> list[ForgettingRow]:
    """Per order and upstream method: the drop of each task since it was learned, its mean,
    and the mean final accuracy."""
    rows = []
    for order, r in results.items():
        for method in UPSTREAM:
            drop = r.forgetting(method)
            final = r.upstream[method].matrix[-1]
            rows.append(
                ForgettingRow(order, method, drop, sum(drop) / len(drop), sum(final) / len(final))
            )
    return rows


def downstream_table(results: dict[str, ProtocolResult]) -> MarkdownTable:
    """:func:`downstream_rows` as a Markdown table."""
    tasks = next(iter(results.values())).downstream.tasks if results else []
    columns = [
        ("order", lambda r: r.order),
        ("learner", lambda r: r.learner),
        *((t, lambda r, i=i: f"{r.accuracy[i]:.1f}") for i, t in enumerate(tasks)),
        ("mean", lambda r: f"{r.mean:.1f}"),
        ("transfer", lambda r: f"{r.transfer:+.1f}"),
    ]
    return markdown_table(downstream_rows(results), columns)


def forgetting_table(results: dict[str, ProtocolResult]) -> MarkdownTable:
    """:func:`forgetting_rows` as a Markdown table (tasks in each order's own sequence)."""
    columns = [
        ("order", lambda r: r.order),
        ("method", lambda r: r.method),
        ("drop per task", lambda r: " / ".join(f"{v:.1f}" for v in r.per_task)),
        ("forgetting", lambda r: f"{r.forgetting:.2f}"),
        ("Last", lambda r: f"{r.last:.1f}"),
    ]
    return markdown_table(forgetting_rows(results), columns)


def protocol_config(order: str, mode: str) -> ProtocolConfig:
    """The protocol's budgets in a notebook mode (``fast``, ``class`` or ``full``)."""
    configs = {"fast": fast_config, "class": class_config, "full": ProtocolConfig}
    if mode not in configs:
        raise InputError(f"unknown mode {mode!r}; valid modes: {', '.join(configs)}")
    return configs[mode](order)
