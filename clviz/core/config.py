"""Configuration: how a method trains on each task, and everything that determines a run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """How every method trains on a task (its own hyper-parameters live in its ``Options``).

    ``task_steps`` gives each task of the stream its own number of steps (in stream order)
    where a budget must match another method's: the ATLAS protocol gives continual fine-tuning
    the steps ATLAS took on each task.
    """

    steps: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    label_smoothing: float = 0.2
    task_steps: tuple[int, ...] | None = None

    def steps_for(self, index: int) -> int:
        """The training steps of the ``index``-th task of the stream."""
        if self.task_steps is None:
            return self.steps
        if not 0 <= index < len(self.task_steps):
            raise ValueError(
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
        return asdict(self)

    def digest(self) -> str:
        """A short stable hash of the full config: same config, same results."""
        return digest_of(self.as_dict())
