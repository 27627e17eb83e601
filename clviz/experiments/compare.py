"""Several methods on one stream with identical budgets, and the budget a notebook runs with.

This is what notebooks 01-08, the benchmark scripts and the main job call: every run goes
through :func:`clviz.experiments.runs.run`, so finished runs are reused from the run store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clviz.core.config import RunConfig
from clviz.core.device import resolve_device
from clviz.core.result import RunResult
from clviz.core.store import RESULTS, results_root
from clviz.experiments.profiles import default_profile, get_profile, make_config
from clviz.experiments.runs import run, run_store
from clviz.experiments.workers import train_in_workers

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


def comparison_configs(
    methods: Sequence[str],
    stream: str = "default",
    seed: int = 0,
    steps: int | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    device: str | None = None,
    profile: str | None = None,
) -> list[RunConfig]:
    """The config of each method's run in a comparison (see :func:`compare`)."""
    profile = profile or default_profile()
    configs = []
    for name in methods:
        config = make_config(
            profile, name, stream, seed, steps=steps, options=(options or {}).get(name, {})
        )
        config.device = device
        configs.append(config)
    return configs


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
    workers: int = 1,
    logs: str | Path | None = None,
) -> dict[str, RunResult]:
    """Results of each method on ``stream`` (run now, or reused when already finished), by
    method, under ``profile`` (default ``$CLVIZ_PROFILE`` or ``embedded``; ``steps`` replaces
    its budget). Runs live in ``root`` (default :func:`clviz.core.store.results_root`), one
    folder per config, so a fast-mode run never shadows a full one. ``device``: see
    :func:`clviz.core.device.resolve_device` (None: ``$CLVIZ_DEVICE`` or the best there is).

    With ``workers`` > 1 the runs not finished yet train side by side in that many processes,
    one thread each (:mod:`clviz.experiments.workers`; their output goes to ``logs``, default
    ``<root>/_logs``), then every result is read from the store."""
    configs = comparison_configs(methods, stream, seed, steps, options, device, profile)
    if workers > 1:
        missing = [c for c in configs if not is_finished(c, root)]
        if len(missing) > 1:
            logs = Path(logs) if logs is not None else Path(root or results_root()) / "_logs"
            train_in_workers(missing, min(workers, len(missing)), logs, root)
    return {c.method: run(c, root=root, progress=progress) for c in configs}


def is_finished(config: RunConfig, root: str | Path | None = None) -> bool:
    """Whether ``config``'s run is already in the store (without taking its folder's lock)."""
    placed = replace(config, device=resolve_device(config.device).type)  # as run() names it
    return (run_store(placed, root=root).folder / RESULTS).is_file()
