"""Run several methods on one stream with identical budgets, and tabulate them.

This is what notebooks 02 and 08, the benchmark script and the main job call: every run goes
through :func:`clviz.engine.run`, so finished runs are reused from ``results/runs``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clviz.config import RunConfig
from clviz.engine import default_out_dir, run
from clviz.methods import TrainConfig

FAST_ENV = "CLVIZ_FAST"


@dataclass(frozen=True)
class Budget:
    """The stream and training budget a notebook or script uses."""

    stream: str
    steps: int
    fast: bool


def notebook_budget(stream: str = "default", steps: int | None = None) -> Budget:
    """The full budget for people, or a small one when ``CLVIZ_FAST=1`` (the test suite sets it):
    the three-task ``smoke`` stream and 10 steps per task."""
    if os.environ.get(FAST_ENV, "") not in ("", "0"):
        return Budget("smoke", 10, True)
    return Budget(stream, steps if steps is not None else TrainConfig().steps, False)


def compare(
    methods: Sequence[str],
    stream: str = "default",
    seed: int = 0,
    steps: int | None = None,
    root: str | Path | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Results of each method on ``stream`` (run now, or reused when already finished).

    Runs live in ``root`` (default :func:`clviz.engine.results_root`); a run with a non-default
    step budget gets its own folder, so fast-mode runs never shadow full ones.
    """
    out = {}
    for name in methods:
        train = TrainConfig() if steps is None else TrainConfig(steps=steps)
        config = RunConfig(
            method=name,
            stream=stream,
            seed=seed,
            train=train,
            options=(options or {}).get(name, {}),
        )
        folder = default_out_dir(config, root)
        if steps is not None and steps != TrainConfig().steps:
            folder = folder.with_name(f"{folder.name}_steps{steps}")
        out[name] = run(config, folder, progress=progress)
    return out


def comparison_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method: Transfer, Avg, Last, BWT, forgetting, parameters, seconds."""
    rows = []
    for name, r in results.items():
        m = r["metrics"]
        rows.append(
            {
                "method": name,
                "transfer": m["transfer"],
                "avg": m["avg"],
                "last": m["last"],
                "bwt": m["bwt"],
                "forgetting": m["forgetting"],
                "trainable_params": r["trainable_params"],
                "seconds": r["seconds"],
                "peak_memory_mb": r.get("peak_memory_mb"),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`comparison_rows` (Markdown-compatible)."""
    head = "| method | Transfer | Avg | Last | BWT | forgetting | trainable params | seconds |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['transfer']:.1f} | {r['avg']:.1f} | {r['last']:.1f} | "
            f"{r['bwt']:+.1f} | {r['forgetting']:.1f} | {r['trainable_params'] / 1e6:.2f}M | "
            f"{r['seconds']:.0f} |"
        )
    return "\n".join(lines)
