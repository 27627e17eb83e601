"""Representation drift: what a method's features look like after each task of a stream.

- :mod:`~clviz.drift.probe`: a fixed probe set (test images of every task, and the class texts).
- :mod:`~clviz.drift.extract`: the probe's features from a method at one checkpoint (final
  embeddings and every block of both towers, captured with :mod:`clviz.hooks`); the engine
  calls it before the first task and after every task, and saves them next to the run.
- :mod:`~clviz.drift.measures`: linear CKA, class-centroid shift, modality gap, k-NN accuracy.
- :mod:`~clviz.drift.umap_map`: one UMAP fitted on the union of checkpoints, cached on disk.
- :mod:`~clviz.drift.runs`: the records and curves of finished runs, by method.
"""

from clviz.drift.extract import Snapshot, extract_snapshot
from clviz.drift.measures import (
    centroid_shift,
    drift_curves,
    knn_accuracy,
    linear_cka,
    modality_gap,
)
from clviz.drift.probe import Probe, make_probe
from clviz.drift.runs import curves_of, records_of
from clviz.drift.store import DriftRecord, load_snapshots
from clviz.drift.umap_map import drift_map

__all__ = [
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
