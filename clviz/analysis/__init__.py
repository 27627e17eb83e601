"""Analysis of what a run learned beyond its accuracy matrix: per-layer features
(:mod:`~clviz.analysis.features`) and representation drift (:mod:`~clviz.analysis.drift`).
The continual-learning metrics of a matrix live in :mod:`clviz.core.metrics`."""
