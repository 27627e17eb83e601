"""The same comparison over several seeds: is a difference between two methods real?

A seed draws another sample of the embedded world and another training order and
initialisation, so the spread over seeds is the noise any single-seed table carries. Every
(method, seed) run is an ordinary run of the store (reused when finished, trained side by side
in worker processes when not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clviz.core.result import RunResult
from clviz.errors import InputError
from clviz.experiments.compare import comparison_configs, train_missing
from clviz.experiments.runs import run
from clviz.experiments.tables import MarkdownTable, markdown_table

METRICS = ("transfer", "avg", "last", "bwt", "forgetting")
LABELS = ("Transfer", "Avg", "Last", "BWT", "forgetting")


@dataclass(frozen=True)
class Spread:
    """One metric of one method over seeds: the mean, the sample standard deviation (0 for a
    single seed) and the value of each seed."""

    mean: float
    std: float
    values: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f}"


def compare_seeds(
    methods: Sequence[str],
    seeds: Sequence[int],
    stream: str = "default",
    steps: int | None = None,
    root: str | Path | None = None,
    workers: int = 1,
    logs: str | Path | None = None,
    device: str | None = None,
    profile: str | None = None,
    progress: bool = True,
) -> dict[str, list[RunResult]]:
    """Each method's results, one per seed in ``seeds`` order (see
    :func:`clviz.experiments.compare.compare` for the other arguments)."""
    if not seeds:
        raise InputError("no seeds given; pass at least one, e.g. seeds=[0, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"seeds repeat: {list(seeds)}; each seed is one run per method")
    configs = [
        config
        for seed in seeds
        for config in comparison_configs(methods, stream, seed, steps, None, device, profile)
    ]
    train_missing(configs, workers, root, logs)
    by_method: dict[str, list[RunResult]] = {m: [] for m in methods}
    for config in configs:
        by_method[config.method].append(run(config, root=root, progress=progress))
    return by_method


def spreads(by_method: Mapping[str, Sequence[RunResult]]) -> dict[str, dict[str, Spread]]:
    """Mean, standard deviation and values over seeds of every metric, by method."""
    table = {}
    for method, results in by_method.items():
        table[method] = {}
        for metric in METRICS:
            values = np.array([getattr(r.metrics, metric) for r in results], dtype=float)
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            table[method][metric] = Spread(float(values.mean()), std, tuple(values.tolist()))
    return table


def seed_table(by_method: Mapping[str, Sequence[RunResult]]) -> MarkdownTable:
    """A Markdown table of every metric as mean ± standard deviation over the seeds."""
    seeds = len(next(iter(by_method.values())))
    columns = [(f"method ({seeds} seeds)", lambda row: row[0])]
    columns += [
        (label, lambda row, m=m: str(row[1][m])) for label, m in zip(LABELS, METRICS, strict=True)
    ]
    return markdown_table(list(spreads(by_method).items()), columns)


def difference_is_clear(a: Spread, b: Spread) -> bool:
    """Whether two methods' means differ by more than their spreads together (mean ± one
    standard deviation ranges that do not overlap): a rough, honest test for a handful of
    seeds, not a significance test."""
    return abs(a.mean - b.mean) > a.std + b.std
