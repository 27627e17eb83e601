"""Typed results: what a run learned, how it was measured, and what each method recorded.

A :class:`RunResult` is what :func:`clviz.core.loop.run_stream` returns and what
``results.json`` holds; figures, the report, widgets and notebooks read its fields, never a
string-keyed dict. Each method may add a typed record (its :class:`MethodRecord` subclass:
routing counts, alpha weights, teacher weights...), registered by ``kind`` so that a saved
result loads back into the same types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import dacite

from clviz.core.integrity import IntegrityError, ResultError, read_sealed_json, write_sealed_json
from clviz.core.metrics import metrics_for
from clviz.errors import InputError

RECORD_TYPES: dict[str, type[MethodRecord]] = {}


@dataclass
class MethodRecord:
    """What a method keeps beyond the accuracy matrix, for its figures. Subclasses are
    dataclasses registered with :func:`register_record`."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


def register_record(cls: type[MethodRecord]) -> type[MethodRecord]:
    """Class decorator: let saved results of this record ``kind`` load back as ``cls``."""
    if not cls.kind or cls.kind in RECORD_TYPES:
        raise InputError(f"record kind {cls.kind!r} is empty or already registered")
    RECORD_TYPES[cls.kind] = cls
    return cls


def record_from_dict(data: dict[str, Any] | None) -> MethodRecord | None:
    """The typed record saved as ``data`` (None stays None)."""
    if data is None:
        return None
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in RECORD_TYPES:
        raise ResultError(f"unknown record kind {kind!r}; known: {', '.join(RECORD_TYPES)}")
    return dacite.from_dict(RECORD_TYPES[kind], data, dacite.Config(check_types=False))


@dataclass
class StageStats:
    """One optimisation stage of a task: its name, steps, first and final loss (the mean of
    the last ten steps), and the base learning rate of each parameter group
    (:mod:`clviz.core.rates`; the schedule scales them step by step)."""

    name: str
    steps: int
    first_loss: float
    final_loss: float
    rates: list[float] = field(default_factory=list)


@dataclass
class TaskStats:
    """How training one task went: its stages in order (none for a method that never trains)."""

    stages: list[StageStats] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return sum(s.steps for s in self.stages)

    @property
    def first_loss(self) -> float | None:
        return self.stages[0].first_loss if self.stages else None

    @property
    def final_loss(self) -> float | None:
        return self.stages[-1].final_loss if self.stages else None


@dataclass
class RunResult:
    """One method learning a sequence of tasks, evaluated after each.

    ``matrix[t]`` is the evaluation after learning ``tasks[t]``, one entry per ``columns``
    (task-incremental: every task of the stream; class-incremental: the classes seen so far).
    ``zero_shot`` is the untouched backbone under the same evaluation (None where a task has
    no zero-shot prediction, e.g. a matching task whose head must be trained). ``metrics`` is
    computed from the matrix by the ``protocol``'s rules (:mod:`clviz.core.metrics`).
    """

    method: str
    tasks: list[str]
    matrix: list[list[float]]
    columns: list[str] = field(default_factory=list)
    zero_shot: list[float | None] = field(default_factory=list)
    protocol: str = "task-incremental"
    stream: str = ""
    seed: int = 0
    task_stats: list[TaskStats] = field(default_factory=list)
    trainable_params: int = 0
    total_params: int = 0
    seconds: float = 0.0
    peak_memory_mb: float = 0.0  # the process's peak resident memory
    device: str = "cpu"  # where it computed, e.g. "cpu", "mps", "cuda (NVIDIA H100 80GB HBM3)"
    peak_gpu_memory_mb: float | None = None  # CUDA only
    record: MethodRecord | None = None
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # what a protocol adds (class order...)
    run_dir: Path | None = None  # where the run lives (not saved: the folder may move)
    reused: bool = field(default=False, compare=False)  # read back, not trained (not saved)

    def __post_init__(self) -> None:
        if not self.columns:
            self.columns = list(self.tasks)

    @property
    def metrics(self):
        """The protocol's headline numbers (Transfer / Avg / Last / BWT / forgetting for
        task-incremental runs; Avg / Last for class-incremental ones)."""
        return metrics_for(self.protocol, self.matrix)

    @property
    def zero_shot_metrics(self):
        """The same numbers for the untouched backbone (class-incremental: its own curve)."""
        if self.protocol == "class-incremental":
            return metrics_for(self.protocol, [[z] for z in self.zero_shot])
        return metrics_for(self.protocol, [list(self.zero_shot)] * len(self.matrix))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field but ``run_dir``, plus the metrics for people to read."""
        skip = ("record", "run_dir", "reused")
        data = {k: v for k, v in asdict(self).items() if k not in skip}
        data["record"] = None if self.record is None else self.record.to_dict()
        data["metrics"] = self.metrics.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], run_dir: str | Path | None = None) -> RunResult:
        data = dict(data)
        data.pop("metrics", None)  # recomputed from the matrix
        record = record_from_dict(data.pop("record", None))
        result = dacite.from_dict(cls, data, dacite.Config(check_types=False))
        result.record = record
        result.run_dir = None if run_dir is None else Path(run_dir)
        return result

    def save(self, path: str | Path) -> None:
        """Write ``results.json`` atomically, sealed with its sha256 (checked by :meth:`load`)."""
        write_sealed_json(path, self.to_dict(), role="results", key=self.config_hash)

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read a ``results.json`` after checking its checksum; its folder becomes ``run_dir``."""
        path = Path(path)
        fix = "delete the folder, or rerun the same command with --force to rebuild it"
        try:
            data, _ = read_sealed_json(path, fix, role="results", key=None)
        except IntegrityError as err:
            raise ResultError(str(err)) from None
        try:
            return cls.from_dict(data, path.parent)
        except (ValueError, TypeError, KeyError, AttributeError, dacite.DaciteError) as err:
            raise ResultError(f"cannot read the results in {path} ({err}); {fix}") from None
