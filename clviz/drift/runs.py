"""From finished runs (what :func:`clviz.compare.compare` returns) to their drift records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clviz.drift.measures import drift_curves
from clviz.drift.store import DriftRecord, load_snapshots


def records_of(results_by_method: Mapping[str, Mapping[str, Any]]) -> dict[str, DriftRecord]:
    """The probe features saved with each run (``results["run_dir"]``), by method."""
    missing = [m for m, r in results_by_method.items() if "run_dir" not in r]
    if missing:
        raise ValueError(
            f"results of {', '.join(missing)} carry no 'run_dir': pass what clviz.engine.run "
            "or clviz.compare.compare returned, not a results.json read by hand"
        )
    return {m: load_snapshots(r["run_dir"]) for m, r in results_by_method.items()}


def curves_of(records: Mapping[str, DriftRecord], k: int = 5) -> dict[str, dict[str, Any]]:
    """Every drift measure at every checkpoint, by method (see :func:`drift_curves`)."""
    return {m: drift_curves(r.snapshots, r.task_ids, r.labels, k) for m, r in records.items()}
