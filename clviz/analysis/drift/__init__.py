"""Representation drift: what a method's features look like after each task of a stream.

- :mod:`~clviz.analysis.drift.probe`: a fixed probe set (test images of every task, and the
  class texts).
- :mod:`~clviz.analysis.drift.extract`: the probe's features from a method at one checkpoint
  (final embeddings and every block of both towers, captured with :mod:`clviz.hooks`).
- :mod:`~clviz.analysis.drift.observer`: takes them before the first task and after every
  task of a run, and saves them next to the run (``features.pt``).
- :mod:`~clviz.analysis.drift.measures`: linear CKA, class-centroid shift, modality gap, k-NN.
- :mod:`~clviz.analysis.drift.umap_map`: one UMAP fitted on the union of checkpoints, cached.
- :mod:`~clviz.analysis.drift.runs`: the records and curves of finished runs, by method.
"""

from clviz.analysis.drift.extract import Snapshot, extract_snapshot
from clviz.analysis.drift.measures import (
    centroid_shift,
    drift_curves,
    knn_accuracy,
    linear_cka,
    modality_gap,
)
from clviz.analysis.drift.observer import DriftObserver
from clviz.analysis.drift.probe import Probe, make_probe
from clviz.analysis.drift.runs import curves_of, records_of
from clviz.analysis.drift.store import DriftRecord, load_snapshots
from clviz.analysis.drift.umap_map import drift_map

__all__ = [
    "DriftObserver",
    "DriftRecord",
    "Probe",
    "Snapshot",
    "centroid_shift",
    "curves_of",
    "drift_curves",
    "drift_map",
    "extract_snapshot",
    "knn_accuracy",
    "linear_cka",
    "load_snapshots",
    "make_probe",
    "modality_gap",
    "records_of",
]
