"""MulKI's stage-by-stage ablation: the full method, and each stage switched off in turn.

Every variant is an ordinary run (:func:`clviz.experiments.runs.run`), so the full method
shares its run with the main job and the notebooks, and each variant resumes and is reused
like any other run. :func:`clviz.experiments.tables.ablation_table` tabulates them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clviz.core.result import RunResult
from clviz.experiments.compare import train_missing
from clviz.experiments.profiles import default_profile, make_config
from clviz.experiments.runs import run

# variant label -> options; "all stages" is the default MulKI, the others switch one stage off
ABLATIONS: dict[str, dict[str, Any]] = {
    "all stages": {},
    "without 1 · eliciting": {"elicit": False},
    "without 2 · adding": {"add": False},
    "without 3 · distinguishing": {"distinguish": False},
    "without 4 · connecting": {"connect": False},
}


def run_ablation(
    stream: str = "default",
    seed: int = 0,
    steps: int | None = None,
    root: str | Path | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    workers: int = 1,
) -> dict[str, RunResult]:
    """Results of each variant (label -> result), run now or reused from the run store; with
    ``workers`` > 1 the missing ones train side by side (see :func:`compare`). Each variant is
    the profile's MulKI run (``$CLVIZ_PROFILE``, as :func:`compare` makes it) with its options."""
    configs = {
        label: make_config(default_profile(), "mulki", stream, seed, steps=steps, options=options)
        for label, options in (variants or ABLATIONS).items()
    }
    train_missing(list(configs.values()), workers, root)
    return {label: run(c, root=root, progress=progress) for label, c in configs.items()}
