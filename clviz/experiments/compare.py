"""Several methods on one stream with identical budgets, and the budget a notebook runs with.

This is what notebooks 01-08, the benchmark scripts and the main job call: every run goes
through :func:`clviz.experiments.runs.run`, so finished runs are reused from the run store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clviz.core.config import RunConfig, TrainConfig
from clviz.core.result import RunResult
from clviz.experiments.runs import run

FAST_ENV = "CLVIZ_FAST"


@dataclass(frozen=True)
class Budget:
    """The stream and training budget a notebook or script uses."""

    stream: str
    steps: int
    fast: bool

    def describe(self) -> str:
        """One line for the top of a notebook: what runs, and whether fast mode is on."""
        fast = "  (fast mode: CLVIZ_FAST is set)" if self.fast else ""
        return f"stream {self.stream!r}, {self.steps} training steps per task{fast}"


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
    device: str | None = None,
) -> dict[str, RunResult]:
    """Results of each method on ``stream`` (run now, or reused when already finished), by
    method. Runs live in ``root`` (default :func:`clviz.core.store.results_root`), one folder
    per config, so a fast-mode run never shadows a full one. ``device``: see
    :func:`clviz.core.device.resolve_device` (None: ``$CLVIZ_DEVICE`` or the best there is)."""
    train = TrainConfig() if steps is None else TrainConfig(steps=steps)
    return {
        name: run(
            RunConfig(
                method=name,
                stream=stream,
                seed=seed,
                train=train,
                options=(options or {}).get(name, {}),
                device=device,
            ),
            root=root,
            progress=progress,
        )
        for name in methods
    }
