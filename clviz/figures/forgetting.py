"""Forgetting figures: accuracy matrices, per-task curves across the stream, metric bars.

Every function takes :class:`~clviz.core.result.RunResult` objects (one, or several by name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from clviz.core.result import RunResult

METRIC_LABELS = {
    "transfer": "Transfer",
    "avg": "Avg",
    "last": "Last",
    "bwt": "BWT",
    "forgetting": "forgetting",
}

#: One colour per line, cycled; a line and its markers share one colour.
PALETTE = qualitative.Plotly + qualitative.D3


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


def accuracy_heatmap(result: RunResult, title: str | None = None) -> go.Figure:
    """The T x T accuracy matrix of one run: row t = after training task t."""
    fig = go.Figure(_heatmap(np.asarray(result.matrix), result.tasks, True))
    fig.update_layout(
        title=title or f"Accuracy matrix of {result.method}",
        xaxis_title="evaluated on",
        yaxis=dict(autorange="reversed"),
        height=480,
        autosize=True,
    )
    return fig


def accuracy_heatmaps(
    results_by_method: Mapping[str, RunResult],
    max_cols: int = 3,
    title: str = "Accuracy matrices",
) -> go.Figure:
    """Accuracy matrices of several methods side by side (``max_cols`` per row), one scale.

    The figure has no fixed width: it fills the notebook cell or report it is shown in."""
    names = list(results_by_method)
    cols = min(len(names), max_cols)
    rows = -(-len(names) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=names,
        horizontal_spacing=0.03,
        vertical_spacing=0.12 / rows,
    )
    for i, name in enumerate(names):
        r = results_by_method[name]
        row, col = i // cols + 1, i % cols + 1
        fig.add_trace(
            _heatmap(np.asarray(r.matrix), r.tasks, i == len(names) - 1),
            row=row,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=row, col=col)
        fig.update_xaxes(showticklabels=row == rows, row=row, col=col)
    fig.update_layout(
        title=f"{title}<br><sup>row t: after training task t; above the diagonal: "
        "tasks not learned yet</sup>",
        height=140 + 340 * rows,
        autosize=True,
        margin=dict(t=110),
    )
    return fig


STAR_KEY = "★ on a line: that task's accuracy right after it was learned"


def task_curves(result: RunResult, title: str | None = None) -> go.Figure:
    """Each task's accuracy after every step of the stream; a star, in the line's colour,
    where the task was learned (the subtitle says so)."""
    matrix = np.asarray(result.matrix)
    tasks = result.tasks
    x = list(range(1, len(tasks) + 1))
    fig = go.Figure()
    for d, name in enumerate(tasks):
        colour = PALETTE[d % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=matrix[:, d],
                mode="lines",
                name=name,
                legendgroup=name,
                line=dict(color=colour),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[d + 1],
                y=[matrix[d, d]],
                mode="markers",
                name=f"{name} learned here",
                legendgroup=name,
                marker=dict(
                    size=13, symbol="star", color=colour, line=dict(width=1, color="white")
                ),
                showlegend=False,
                hovertemplate=f"{name} learned here: %{{y:.1f}}%<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"{title or f'Accuracy of every task across the stream ({result.method})'}"
        f"<br><sup>{STAR_KEY}</sup>",
        xaxis=dict(
            title="tasks learned so far",
            tickvals=x,
            ticktext=[f"{i}: {t}" for i, t in zip(x, tasks, strict=True)],
        ),
        yaxis=dict(title="accuracy (%)", range=[0, 100]),
        height=460,
        autosize=True,
        margin=dict(t=90),
    )
    return fig


def task_curve_comparison(results_by_method: Mapping[str, RunResult], task: str) -> go.Figure:
    """One task's accuracy across the stream, one line per method."""
    fig = go.Figure()
    tasks = None
    for name, r in results_by_method.items():
        tasks = r.tasks
        d = tasks.index(task)
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(tasks) + 1)),
                y=np.asarray(r.matrix)[:, d],
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
        autosize=True,
    )
    return fig


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    ytitle: str = "percent",
    signed: bool = False,
) -> go.Figure:
    """One group of bars per entry of ``groups``, one bar per series (values printed on top;
    ``signed`` prints a sign, for changes)."""
    fig = go.Figure()
    for name, values in series.items():
        fig.add_trace(
            go.Bar(
                x=list(groups),
                y=list(values),
                name=name,
                text=[f"{v:+.1f}" if signed else f"{v:.1f}" for v in values],
                textposition="outside",
            )
        )
    fig.update_layout(barmode="group", title=title, yaxis_title=ytitle, height=420, autosize=True)
    return fig


def metric_bars(
    results_by_method: Mapping[str, RunResult],
    metrics: Sequence[str] = ("transfer", "avg", "last"),
    title: str | None = None,
) -> go.Figure:
    """Grouped bars of the chosen metrics, one group per metric, one bar per method.

    The default title names the metrics shown, so two calls with different metrics (as in
    the method comparison) do not share one title."""
    labels = [METRIC_LABELS[m] for m in metrics]
    if title is None:
        title = f"Continual-learning metrics: {', '.join(labels)} (percent, per method)"
    return grouped_bars(
        labels,
        {name: [getattr(r.metrics, m) for m in metrics] for name, r in results_by_method.items()},
        title,
    )


ROW_KEY = (
    "red: just learned · blue: learned before · grey: not learned yet · black ticks: zero-shot"
)


def accuracy_row(result: RunResult, index: int) -> go.Figure:
    """Accuracy on every task after learning task ``index`` (0-based; one row of the matrix),
    next to the untouched backbone's zero-shot accuracy: what is learned, kept, forgotten or
    lost. The title numbers tasks from 1, as the explorer's slider does."""
    matrix = np.asarray(result.matrix)
    tasks = result.tasks
    if not 0 <= index < len(matrix):
        raise IndexError(f"task index {index} out of range 0..{len(matrix) - 1}")
    row = matrix[index]
    state = [
        "learned now" if d == index else "learned" if d < index else "not yet"
        for d in range(len(tasks))
    ]
    colors = {"learned now": "#d62728", "learned": "#1f77b4", "not yet": "#9aa5b1"}
    fig = go.Figure(
        go.Bar(
            x=tasks,
            y=row,
            marker_color=[colors[s] for s in state],
            text=[f"{v:.0f}" for v in row],
            textposition="outside",
            customdata=state,
            hovertemplate="%{x} (%{customdata}): %{y:.1f}%<extra></extra>",
            name=f"after {tasks[index]}",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=tasks,
            y=result.zero_shot,
            mode="markers",
            # an open symbol is stroked in the marker colour: black, as the key says
            marker=dict(
                symbol="line-ew-open", size=28, color="black", line=dict(width=3, color="black")
            ),
            name="zero-shot",
            hovertemplate="%{x}: zero-shot %{y:.1f}%<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{result.method}: accuracy after task {index + 1} ({tasks[index]})<br><sup>"
        f"{ROW_KEY}</sup>",
        yaxis=dict(title="accuracy (%)", range=[0, 105]),
        height=430,
        autosize=True,
        margin=dict(t=100),
    )
    return fig


def seed_bars(
    spreads_by_method: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] = ("transfer", "last"),
    title: str | None = None,
) -> go.Figure:
    """Mean over seeds as bars, one standard deviation as error bars and every seed as a dot,
    one group per metric (from :func:`clviz.experiments.seeds.spreads`): a difference smaller
    than the error bars is one a single seed could have reversed."""
    labels = [METRIC_LABELS[m] for m in metrics]
    seeds = len(next(iter(spreads_by_method.values()))[metrics[0]].values)
    fig = go.Figure()
    for index, (name, row) in enumerate(spreads_by_method.items()):
        color = PALETTE[index % len(PALETTE)]
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[row[m].mean for m in metrics],
                error_y={"type": "data", "array": [row[m].std for m in metrics]},
                name=name,
                marker_color=color,
                offsetgroup=name,
                legendgroup=name,
            )
        )
        fig.add_trace(
            go.Box(
                x=[label for m, label in zip(metrics, labels, strict=True) for _ in row[m].values],
                y=[v for m in metrics for v in row[m].values],
                name=name,
                offsetgroup=name,
                legendgroup=name,
                showlegend=False,
                boxpoints="all",
                pointpos=0,
                fillcolor="rgba(0,0,0,0)",
                line={"color": "rgba(0,0,0,0)"},
                marker={"color": "black", "size": 5},
                hoverinfo="y",
            )
        )
    fig.update_layout(
        barmode="group",
        boxmode="group",
        title=title or f"Mean over {seeds} seeds, ± one standard deviation; dots: each seed",
        yaxis_title="percent",
        height=440,
        autosize=True,
    )
    return fig
