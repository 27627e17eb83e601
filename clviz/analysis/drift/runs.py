"""From finished runs (what :func:`clviz.experiments.compare.compare` returns) to their drift
records and curves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clviz.analysis.drift.measures import drift_curves
from clviz.analysis.drift.store import DriftRecord, load_snapshots
from clviz.core.result import RunResult
from clviz.errors import InputError


def records_of(results_by_method: Mapping[str, RunResult]) -> dict[str, DriftRecord]:
    """The probe features saved with each run (in its ``run_dir``), by method."""
    missing = [m for m, r in results_by_method.items() if r.run_dir is None]
    if missing:
        raise InputError(
            f"the results of {', '.join(missing)} have no run folder: pass results that a run "
            "store saved (clviz.experiments.run or compare), or RunResult.load(path)"
        )
    return {m: load_snapshots(r.run_dir, r.config_hash) for m, r in results_by_method.items()}


def curves_of(records: Mapping[str, DriftRecord], k: int = 5) -> dict[str, dict[str, Any]]:
    """Every drift measure at every checkpoint, by method (see :func:`drift_curves`)."""
    return {m: drift_curves(r.snapshots, r.task_ids, r.labels, k) for m, r in records.items()}
