"""Accuracy figures: zero-shot bars against chance, per-layer curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from clviz.figures.colors import method_color
from clviz.figures.forgetting import labels_above


def zeroshot_bars(
    accuracy: Mapping[str, float], chance: Mapping[str, float], title: str = "Zero-shot accuracy"
) -> go.Figure:
    """One bar per task (percent), its value above it, with the task's chance level marked."""
    names = list(accuracy)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[accuracy[n] for n in names],
            name="zero-shot",
            marker_color=method_color("zero-shot"),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[chance[n] for n in names],
            mode="markers",
            name="chance",
            marker=dict(symbol="line-ew-open", size=36, line=dict(width=3)),
        )
    )
    values = [accuracy[n] for n in names]
    ticks = [chance[n] for n in names]
    fig.add_trace(labels_above(names, values, ticks, [f"{v:.0f}" for v in values]))
    fig.update_layout(
        title=title,
        yaxis=dict(title="accuracy (%)", range=[0, 105]),
        xaxis_title="task",
        legend=dict(orientation="h", y=1.02, yanchor="bottom"),
        height=420,
    )
    return fig


def layer_curve(
    values: Mapping[str, Sequence[float]], layers: Sequence[str], title: str, ytitle: str
) -> go.Figure:
    """One line per series over the layers of a tower (e.g. probe accuracy per block)."""
    fig = go.Figure()
    for name, ys in values.items():
        fig.add_trace(go.Scatter(x=list(layers), y=list(ys), mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title="layer", yaxis_title=ytitle, height=380)
    return fig
