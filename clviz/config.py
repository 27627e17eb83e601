"""One config dataclass for a continual-learning run; its hash names the cached results."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from clviz.methods.base import TrainConfig

# Fields added after results were first cached: left at their default None they are kept out of
# the hashed dict, so every config written before they existed keeps its digest (and its cache).
OPTIONAL_FIELDS = ("data_root", "image_size")


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hashed_dict(self) -> dict[str, Any]:
        """What the digest covers: everything, less the optional fields left at None."""
        values = self.as_dict()
        return {k: v for k, v in values.items() if not (k in OPTIONAL_FIELDS and v is None)}

    def digest(self) -> str:
        """A short stable hash of the full config: same config, same results folder content."""
        text = json.dumps(self.hashed_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
