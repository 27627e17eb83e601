"""One config dataclass for a continual-learning run; its hash names the cached results."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from clviz.methods.base import TrainConfig


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """A short stable hash of the full config: same config, same results folder content."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
