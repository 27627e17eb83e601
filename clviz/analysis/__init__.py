"""Analysis of finished runs: continual-learning metrics (:mod:`~clviz.analysis.metrics`),
per-layer features (:mod:`~clviz.analysis.features`) and representation drift
(:mod:`~clviz.analysis.drift`)."""
