"""Forgetting figures: accuracy matrices, per-task curves across the stream, metric bars.

Every function takes :class:`~clviz.core.result.RunResult` objects (one, or several by name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from clviz.core.result import RunResult
from clviz.figures.colors import method_colors, task_color

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
        colour = task_color(d)
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
    """One task's accuracy across the stream, one line per method (in its colour)."""
    fig = go.Figure()
    tasks = None
    colors = method_colors(results_by_method)
    for name, r in results_by_method.items():
        tasks = r.tasks
        d = tasks.index(task)
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(tasks) + 1)),
                y=np.asarray(r.matrix)[:, d],
                mode="lines+markers",
                name=name,
                line=dict(color=colors[name]),
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


#: The plot area (pixels) a grouped-bar figure is sized for: an 800-pixel notebook cell less
#: the axis and the legend. Labels are chosen to fit bars of that width, so they cannot overlap
#: there or in anything wider.
PLOT_PX = 520
#: Value labels' font size (pixels).
LABEL_PX = 10


def label_angle(n_groups: int, n_series: int, labels: Sequence[str]) -> int | None:
    """How grouped bars print their values: level (0) when the widest label fits across a bar,
    upright (-90) when only its height does, not at all (None: the hover has the value) when
    the bars are narrower still. Each label stays inside its bar's column, so none overlap."""
    bar = PLOT_PX / max(n_groups, 1) * 0.8 / max(n_series, 1)  # plotly's default bargap 0.2
    if bar >= 0.6 * LABEL_PX * max(map(len, labels), default=0) + 4:
        return 0
    return -90 if bar >= 1.2 * LABEL_PX else None


def _value_range(values: Sequence[float], angle: int | None) -> list[float]:
    """A y range with room past the longest bars for their labels (longer when upright)."""
    lo, hi = min(0.0, *values), max(0.0, *values)
    pad = (hi - lo or 1.0) * {0: 0.08, -90: 0.16, None: 0.04}[angle]
    return [lo - pad if lo < 0 else lo, hi + pad]


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    ytitle: str = "percent",
    signed: bool = False,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """One group of bars per entry of ``groups``, one bar per series (``colors`` by series
    name), its value printed past the bar's end (``signed`` prints a sign, for changes) as
    :func:`label_angle` decides; every value is also in the hover."""
    fmt = "+.1f" if signed else ".1f"
    texts = {name: [format(v, fmt) for v in values] for name, values in series.items()}
    angle = label_angle(len(groups), len(series), [t for ts in texts.values() for t in ts])
    fig = go.Figure()
    for name, values in series.items():
        fig.add_trace(
            go.Bar(
                x=list(groups),
                y=list(values),
                name=name,
                marker_color=(colors or {}).get(name),
                text=None if angle is None else texts[name],
                textposition="outside",
                textangle=angle,
                textfont_size=LABEL_PX,
                constraintext="none",
                cliponaxis=False,
                hovertemplate=f"%{{fullData.name}}<br>%{{x}}: %{{y:{fmt}}}<extra></extra>",
            )
        )
    if angle is None:
        title += "<br><sup>hover a bar for its value</sup>"
    fig.update_layout(
        barmode="group",
        title=title,
        yaxis=dict(
            title=ytitle, range=_value_range([v for vs in series.values() for v in vs], angle)
        ),
        height=420,
        autosize=True,
    )
    return fig


def metric_bars(
    results_by_method: Mapping[str, RunResult],
    metrics: Sequence[str] = ("transfer", "avg", "last"),
    title: str | None = None,
) -> go.Figure:
    """Grouped bars of the chosen metrics, one group per metric, one bar per method (in its
    colour).

    The default title names the metrics shown, so two calls with different metrics (as in
    the method comparison) do not share one title."""
    labels = [METRIC_LABELS[m] for m in metrics]
    if title is None:
        title = f"Continual-learning metrics: {', '.join(labels)} (percent, per method)"
    return grouped_bars(
        labels,
        {name: [getattr(r.metrics, m) for m in metrics] for name, r in results_by_method.items()},
        title,
        colors=method_colors(results_by_method),
    )


def labels_above(
    x: Sequence[str],
    bars: Sequence[float],
    ticks: Sequence[float | None],
    texts: Sequence[str],
    clearance: float = 7.0,
) -> go.Scatter:
    """Value labels just above each bar, or above its reference tick where the tick lies less
    than ``clearance`` (y units, a label's height and a little) above the bar's top and the
    label would sit on it (a text-only trace, out of the legend and the hover). A missing
    tick (None, or ``ticks`` shorter than ``bars``) moves nothing."""
    ticks = [*ticks, *[None] * (len(bars) - len(ticks))]
    tops = [
        float(t) if t is not None and b <= t < b + clearance else float(b)
        for b, t in zip(bars, ticks, strict=True)
    ]
    return go.Scatter(
        x=list(x),
        y=[t + 1.0 for t in tops],
        mode="text",
        text=list(texts),
        textposition="top center",
        textfont_size=LABEL_PX + 1,
        cliponaxis=False,
        showlegend=False,
        hoverinfo="skip",
        name="values",
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
    fig.add_trace(labels_above(tasks, row, result.zero_shot, [f"{v:.0f}" for v in row]))
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
    colors = method_colors(spreads_by_method)
    for name, row in spreads_by_method.items():
        color = colors[name]
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
