"""Plotly figures. Every function returns a ``plotly.graph_objects.Figure``: show it in a
notebook, write it into a report, or test it without a browser."""

from clviz.figures.accuracy import layer_curve, zeroshot_bars
from clviz.figures.colors import method_color, method_colors
from clviz.figures.forgetting import (
    accuracy_heatmap,
    accuracy_heatmaps,
    metric_bars,
    seed_bars,
    task_curve_comparison,
    task_curves,
)
from clviz.figures.world import task_gallery


def use_notebook_renderer() -> None:
    """Show figures interactively in JupyterLab *and* keep them in exported HTML, offline.

    ``plotly_mimetype`` is what JupyterLab renders; ``notebook`` adds an HTML copy with
    plotly.js embedded once, so executed notebooks and their HTML need no network.
    """
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"


__all__ = [
    "accuracy_heatmap",
    "accuracy_heatmaps",
    "layer_curve",
    "method_color",
    "method_colors",
    "metric_bars",
    "seed_bars",
    "task_curve_comparison",
    "task_curves",
    "task_gallery",
    "use_notebook_renderer",
    "zeroshot_bars",
]
