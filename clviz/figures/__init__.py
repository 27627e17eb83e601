"""Plotly figures. Every function returns a ``plotly.graph_objects.Figure``: show it in a
notebook, write it into a report, or test it without a browser."""

from clviz.figures.accuracy import layer_curve, zeroshot_bars
from clviz.figures.forgetting import (
    accuracy_heatmap,
    accuracy_heatmaps,
    metric_bars,
    task_curve_comparison,
    task_curves,
)
from clviz.figures.world import task_gallery

__all__ = [
    "accuracy_heatmap",
    "accuracy_heatmaps",
    "layer_curve",
    "metric_bars",
    "task_curve_comparison",
    "task_curves",
    "task_gallery",
    "zeroshot_bars",
]
