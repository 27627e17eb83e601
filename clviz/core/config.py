"""Configuration: how a method trains on each task, and everything that determines a run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from clviz.core.schedules import SCHEDULES
from clviz.errors import InputError

TRAINING_PROMPTS = ("first", "ensemble")


@dataclass
class TrainConfig:
    """How every method trains on a task (its own hyper-parameters live in its ``Options``).

    ``task_steps`` gives each task of the stream its own number of steps (in stream order)
    where a budget must match another method's: the ATLAS protocol gives continual fine-tuning
    the steps ATLAS took on each task.

    ``schedule`` is the learning-rate schedule of each stage (:mod:`clviz.core.schedules`), with
    ``warmup_steps`` or ``warmup_ratio`` of its steps to warm up; ``task_lr`` gives tasks their
    own base rate by name (the references' per-task rates); ``betas`` and ``eps`` are AdamW's.

    ``prompts`` is how class names become training texts: ``"first"`` (the default) is one
    prompt per class from the task's first template, as ZSCL, MoE-Adapters and ATLAS train
    (``template = dataset.template``); ``"ensemble"`` is the mean over every template, what
    evaluation always uses (CLIP's zero-shot classifier).
    """

    steps: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    label_smoothing: float = 0.2
    task_steps: tuple[int, ...] | None = None
    prompts: str = "first"
    schedule: str = "constant"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    task_lr: dict[str, float] | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.prompts not in TRAINING_PROMPTS:
            raise InputError(
                f"unknown training prompts {self.prompts!r}; valid: {', '.join(TRAINING_PROMPTS)}"
            )
        if self.schedule not in SCHEDULES:
            raise InputError(
                f"unknown schedule {self.schedule!r}; valid schedules: {', '.join(SCHEDULES)}"
            )
        self.betas = tuple(self.betas)  # lists when read back from JSON
        if self.task_steps is not None:
            self.task_steps = tuple(self.task_steps)

    def steps_for(self, index: int) -> int:
        """The training steps of the ``index``-th task of the stream."""
        if self.task_steps is None:
            return self.steps
        if not 0 <= index < len(self.task_steps):
            raise InputError(
                f"task_steps gives {len(self.task_steps)} tasks their steps; task {index} has none"
            )
        return self.task_steps[index]


def digest_of(payload: Any) -> str:
    """A short stable hash of a JSON-able payload: same payload, same hash."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RunConfig:
    """Everything that determines a run's accuracy matrix."""

    method: str
    stream: str = "default"
    seed: int = 0
    backbone: str = "clviz-tiny"
    pretrained: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    options: dict[str, Any] = field(default_factory=dict)  # the method's own hyper-parameters
    eval_batch_size: int = 256
    data_root: str | None = None  # where the real datasets live (real streams only)
    image_size: int | None = None  # pixels of the stream's images; None: the stream's default
    device: str | None = None  # auto | cpu | cuda | cuda:N | mps; None: $CLVIZ_DEVICE or auto

    def as_dict(self) -> dict[str, Any]:
        """The config as JSON holds it (tuples as lists), so a saved config reads back equal."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """The config :meth:`as_dict` wrote (a run's ``results.json`` holds one)."""
        return cls(**{**data, "train": TrainConfig(**(data.get("train") or {}))})

    def digest(self) -> str:
        """A short stable hash of the full config: same config, same results."""
        return digest_of(self.as_dict())
