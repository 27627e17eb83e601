"""Forgetting figures: accuracy matrices, per-task curves across the stream, metric bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

METRIC_LABELS = {
    "transfer": "Transfer",
    "avg": "Avg",
    "last": "Last",
    "bwt": "BWT",
    "forgetting": "forgetting",
}


def _heatmap(matrix: np.ndarray, tasks: Sequence[str], showscale: bool) -> go.Heatmap:
    text = [[f"{v:.0f}" for v in row] for row in matrix]
    return go.Heatmap(
        z=matrix,
        x=list(tasks),
        y=[f"after {t}" for t in tasks],
        zmin=0,
        zmax=100,
        colorscale="Viridis",
        text=text,
        texttemplate="%{text}",
        showscale=showscale,
        hovertemplate="%{y}<br>evaluated on %{x}: %{z:.1f}%<extra></extra>",
        colorbar=dict(title="acc %"),
    )


def accuracy_heatmap(results: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """The T x T accuracy matrix of one run: row t = after training task t."""
    fig = go.Figure(_heatmap(np.asarray(results["accuracy_matrix"]), results["tasks"], True))
    fig.update_layout(
        title=title or f"Accuracy matrix of {results['method']}",
        xaxis_title="evaluated on",
        yaxis=dict(autorange="reversed"),
        height=480,
        width=640,
    )
    return fig


def accuracy_heatmaps(results_by_method: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Accuracy matrices of several methods side by side, on one colour scale."""
    names = list(results_by_method)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.03)
    for i, name in enumerate(names, start=1):
        r = results_by_method[name]
        fig.add_trace(
            _heatmap(np.asarray(r["accuracy_matrix"]), r["tasks"], i == len(names)), row=1, col=i
        )
        fig.update_yaxes(autorange="reversed", showticklabels=i == 1, row=1, col=i)
    fig.update_layout(
        title="Accuracy matrices (row t: after training task t; above the diagonal: "
        "tasks not learned yet)",
        height=460,
        width=max(520, 330 * len(names)),
    )
    return fig


def task_curves(results: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """Each task's accuracy after every step of the stream; a marker where it was learned."""
    matrix = np.asarray(results["accuracy_matrix"])
    tasks = results["tasks"]
    x = list(range(1, len(tasks) + 1))
    fig = go.Figure()
    for d, name in enumerate(tasks):
        fig.add_trace(go.Scatter(x=x, y=matrix[:, d], mode="lines", name=name, legendgroup=name))
        fig.add_trace(
            go.Scatter(
                x=[d + 1],
                y=[matrix[d, d]],
                mode="markers",
                legendgroup=name,
                marker=dict(size=10, symbol="star"),
                showlegend=False,
                hovertemplate=f"{name} learned here: %{{y:.1f}}%<extra></extra>",
            )
        )
    fig.update_layout(
        title=title or f"Accuracy of every task across the stream ({results['method']})",
        xaxis=dict(
            title="tasks learned so far",
            tickvals=x,
            ticktext=[f"{i}: {t}" for i, t in zip(x, tasks, strict=True)],
        ),
        yaxis=dict(title="accuracy (%)", range=[0, 100]),
        height=440,
    )
    return fig


def task_curve_comparison(
    results_by_method: Mapping[str, Mapping[str, Any]], task: str
) -> go.Figure:
    """One task's accuracy across the stream, one line per method."""
    fig = go.Figure()
    tasks = None
    for name, r in results_by_method.items():
        tasks = r["tasks"]
        d = tasks.index(task)
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(tasks) + 1)),
                y=np.asarray(r["accuracy_matrix"])[:, d],
                mode="lines+markers",
                name=name,
            )
        )
    d = tasks.index(task)
    fig.add_vline(x=d + 1, line_dash="dot", annotation_text=f"{task} is learned")
    fig.update_layout(
        title=f"Accuracy on {task!r} across the stream",
        xaxis=dict(
            title="tasks learned so far", tickvals=list(range(1, len(tasks) + 1)), ticktext=tasks
        ),
        yaxis=dict(title="accuracy (%)", range=[0, 100]),
        height=400,
    )
    return fig


def metric_bars(
    results_by_method: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] = ("transfer", "avg", "last"),
) -> go.Figure:
    """Grouped bars of the chosen metrics, one group per metric, one bar per method."""
    fig = go.Figure()
    for name, r in results_by_method.items():
        values = [r["metrics"][m] for m in metrics]
        fig.add_trace(
            go.Bar(
                x=[METRIC_LABELS[m] for m in metrics],
                y=values,
                name=name,
                text=[f"{v:.1f}" for v in values],
                textposition="outside",
            )
        )
    fig.update_layout(
        barmode="group",
        title="Continual-learning metrics (percent)",
        yaxis_title="percent",
        height=420,
    )
    return fig
