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

from clviz.core.result import RunResult
from clviz.experiments.profiles import default_profile, get_profile, make_config
from clviz.experiments.runs import run

FAST_ENV = "CLVIZ_FAST"


@dataclass(frozen=True)
class Budget:
    """The profile, stream and training budget a notebook or script uses."""

    stream: str
    steps: int
    fast: bool
    profile: str = "embedded"

    def describe(self) -> str:
        """One line for the top of a notebook: what runs, and whether fast mode is on."""
        fast = "  (fast mode: CLVIZ_FAST is set)" if self.fast else ""
        profile = "" if self.profile == "embedded" else f"profile {self.profile!r}, "
        return f"{profile}stream {self.stream!r}, {self.steps} training steps per task{fast}"


def notebook_budget(stream: str = "default", steps: int | None = None) -> Budget:
    """The full budget of the profile (``$CLVIZ_PROFILE``, default ``embedded``) for people, or a
    small one when ``CLVIZ_FAST=1`` (the test suite sets it): the three-task ``smoke`` stream and
    10 steps per task."""
    profile = default_profile()
    if os.environ.get(FAST_ENV, "") not in ("", "0"):
        return Budget("smoke", 10, True, profile)
    steps = steps if steps is not None else get_profile(profile).train.steps
    return Budget(stream, steps, False, profile)


def compare(
    methods: Sequence[str],
    stream: str = "default",
    seed: int = 0,
    steps: int | None = None,
    root: str | Path | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    device: str | None = None,
    profile: str | None = None,
) -> dict[str, RunResult]:
    """Results of each method on ``stream`` (run now, or reused when already finished), by
    method, under ``profile`` (default ``$CLVIZ_PROFILE`` or ``embedded``; ``steps`` replaces
    its budget). Runs live in ``root`` (default :func:`clviz.core.store.results_root`), one
    folder per config, so a fast-mode run never shadows a full one. ``device``: see
    :func:`clviz.core.device.resolve_device` (None: ``$CLVIZ_DEVICE`` or the best there is)."""
    profile = profile or default_profile()
    results = {}
    for name in methods:
        config = make_config(
            profile, name, stream, seed, steps=steps, options=(options or {}).get(name, {})
        )
        config.device = device
        results[name] = run(config, root=root, progress=progress)
    return results
