"""Plotly figures. Every function returns a ``plotly.graph_objects.Figure``: show it in a
notebook, write it into a report, or test it without a browser."""

from clviz.figures.accuracy import layer_curve, zeroshot_bars
from clviz.figures.world import task_gallery

__all__ = ["layer_curve", "task_gallery", "zeroshot_bars"]
