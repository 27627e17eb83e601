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
from clviz.errors import InputError
from clviz.experiments.profiles import default_profile, get_profile, make_config
from clviz.experiments.runs import run, run_store
from clviz.experiments.workers import default_workers, train_in_workers

FAST_ENV = "CLVIZ_FAST"
MODE_ENV = "CLVIZ_MODE"
MODES = ("fast", "class", "full")
CLASS_STEPS = 40  # per task on the default stream: every effect the notebooks name still shows


@dataclass(frozen=True)
class Budget:
    """The profile, stream and training budget a notebook or script uses, and its mode:
    ``fast`` (the test suite: a tiny stream, numbers too small to teach with), ``class`` (a
    lesson: the default stream with fewer steps, a few minutes a notebook on a laptop CPU) or
    ``full`` (the profile's own budget, the same runs as the main job)."""

    stream: str
    steps: int
    mode: str = "full"
    profile: str = "embedded"

    @property
    def fast(self) -> bool:
        return self.mode == "fast"

    @property
    def workers(self) -> int:
        """Runs a notebook trains side by side: one per CPU core in class and full mode (one
        thread each, see :func:`compare`); one in fast mode, where starting workers costs
        more than the runs."""
        return 1 if self.fast else default_workers(None, os.cpu_count() or 1)

    def choose(self, *, fast: Any, classroom: Any, full: Any) -> Any:
        """The value for this mode: how a notebook sizes what it runs besides the stream."""
        return {"fast": fast, "class": classroom, "full": full}[self.mode]

    def describe(self) -> str:
        """One line for the top of a notebook: what runs, and in which mode."""
        mode = {
            "fast": "  (fast mode, CLVIZ_MODE=fast: a smoke test, too small to teach with)",
            "class": "  (class mode, CLVIZ_MODE=class)",
            "full": "",
        }[self.mode]
        profile = "" if self.profile == "embedded" else f"profile {self.profile!r}, "
        return f"{profile}stream {self.stream!r}, {self.steps} training steps per task{mode}"


def notebook_mode() -> str:
    """``$CLVIZ_MODE`` (fast, class or full); ``CLVIZ_FAST=1``, which the test suite sets,
    means fast. Default: full."""
    mode = os.environ.get(MODE_ENV, "").strip().lower()
    if mode and mode not in MODES:
        raise InputError(
            f"unknown {MODE_ENV}={mode!r}; valid modes: {', '.join(MODES)} "
            "(unset it for the full budget)"
        )
    if os.environ.get(FAST_ENV, "") not in ("", "0"):
        return "fast"
    return mode or "full"


def notebook_budget(stream: str = "default", steps: int | None = None) -> Budget:
    """The budget of a notebook in :func:`notebook_mode`, under the profile ``$CLVIZ_PROFILE``
    (default ``embedded``): fast runs the three-task ``smoke`` stream for 10 steps a task,
    class runs ``stream`` for :data:`CLASS_STEPS` steps a task, full the profile's own budget
    (or ``steps``)."""
    profile = default_profile()
    mode = notebook_mode()
    if mode == "fast":
        return Budget("smoke", 10, mode, profile)
    if mode == "class":
        return Budget(stream, CLASS_STEPS, mode, profile)
    steps = steps if steps is not None else get_profile(profile).train.steps
    return Budget(stream, steps, mode, profile)


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
    train_missing(configs, workers, root, logs)
    return {c.method: run(c, root=root, progress=progress) for c in configs}


def train_missing(
    configs: Sequence[RunConfig],
    workers: int,
    root: str | Path | None = None,
    logs: str | Path | None = None,
) -> None:
    """With ``workers`` > 1, train the runs of ``configs`` not finished yet side by side in
    that many processes (logs in ``logs``, default ``<root>/_logs``); otherwise nothing (the
    caller's :func:`~clviz.experiments.runs.run` trains them in this process)."""
    if workers <= 1:
        return
    missing = [c for c in configs if not is_finished(c, root)]
    if len(missing) > 1:
        logs = Path(logs) if logs is not None else Path(root or results_root()) / "_logs"
        train_in_workers(missing, min(workers, len(missing)), logs, root)


def is_finished(config: RunConfig, root: str | Path | None = None) -> bool:
    """Whether ``config``'s run is already in the store (without taking its folder's lock)."""
    placed = replace(config, device=resolve_device(config.device).type)  # as run() names it
    return (run_store(placed, root=root).folder / RESULTS).is_file()
