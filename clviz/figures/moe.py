"""MoE-Adapters figures: which experts each task's router picks, which froze, how DDAS selects.

The inputs are the fields of a :class:`~clviz.methods.moe.RoutingRecord` (and, for DDAS, of a
:class:`~clviz.methods.moe.DDASReport`): ``selections[t][layer]`` (selection counts per expert
while task t trained) and ``frozen_history[t][layer]`` (the frozen set after task t), with
layer names such as
``visual.transformer.resblocks.0`` (image tower) and ``transformer.resblocks.0`` (text tower).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from textwrap import wrap

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from clviz.errors import InputError
from clviz.figures.colors import task_colors

Counts = Sequence[Mapping[str, Sequence[int]]]


def tower_layers(layers: Sequence[str], tower: str) -> list[str]:
    """The layer names of one tower ('image' or 'text'), in depth order."""
    if tower not in ("image", "text"):
        raise InputError(f"tower must be 'image' or 'text', got {tower!r}")
    chosen = [n for n in layers if n.startswith("visual.") == (tower == "image")]
    return sorted(chosen, key=lambda n: int(n.rsplit(".", 1)[1]))


def _short(name: str) -> str:
    return f"block {name.rsplit('.', 1)[1]}"


def selection_frequency(counts: Mapping[str, Sequence[int]], layers: Sequence[str]) -> np.ndarray:
    """Layer x expert share of selections (each row sums to 1 when anything was selected)."""
    m = np.asarray([counts[n] for n in layers], dtype=float)
    return m / np.maximum(m.sum(axis=1, keepdims=True), 1)


def expert_ticks(n_experts: int, most: int = 4) -> list[int]:
    """At most ``most`` evenly spaced expert indices to label on an axis (always expert 0), so
    the tick labels of neighbouring panels do not run together."""
    step = max(1, -(-n_experts // most))
    return list(range(0, n_experts, step))


def _panel_spacing(cols: int) -> float:
    return min(0.05, 0.3 / max(cols - 1, 1))


#: Width (pixels) the panels of a figure are sized for: an 800-pixel notebook cell less the
#: axis and the colour bar.
PANELS_PX = 700
#: The frozen-expert crosses: orange, which no shade of the "Blues" heatmap comes near.
FROZEN_COLOUR = "#e6550d"


def frozen_marker(n_experts: int, panels: int) -> dict:
    """Thin crosses about half an expert's cell wide (at :data:`PANELS_PX`): neighbouring
    frozen experts stay separate crosses, with the cell's colour showing around each."""
    cell = PANELS_PX / max(panels, 1) / max(n_experts, 1)
    size = int(min(9, max(4, round(0.6 * cell))))
    return dict(
        symbol="x-thin",
        size=size,
        color=FROZEN_COLOUR,
        line=dict(width=1.5 if size >= 6 else 1, color=FROZEN_COLOUR),
    )


def _frozen_cells(
    freq: np.ndarray, layers: Sequence[str], frozen: Mapping[str, Sequence[int]]
) -> list[tuple[int, str, float]]:
    """(expert, layer label, share of selections) of every expert in the frozen set."""
    return [(e, _short(n), float(freq[i, e])) for i, n in enumerate(layers) for e in frozen[n]]


def expert_selection_heatmaps(
    selections: Counts, frozen_history: Counts, task_names: Sequence[str], tower: str = "image"
) -> go.Figure:
    """One heatmap per task: how often each expert of each layer was selected while the task
    trained; an orange x marks experts that were already frozen when the task began.

    Every panel's x axis is titled "expert" with a few ticks; the colour bar sits on the right
    of the last panel and the legend (the x marks) below the panels, so they never overlap."""
    layers = tower_layers(list(selections[0]), tower)
    cols = len(selections)
    fig = make_subplots(
        rows=1,
        cols=cols,
        subplot_titles=list(task_names),
        shared_yaxes=True,
        horizontal_spacing=_panel_spacing(cols),
    )
    freqs = [selection_frequency(counts, layers) for counts in selections]
    zmax = max(float(f.max()) for f in freqs) or 1.0  # one scale, the largest share, for all
    legend_shown = False
    for t, freq in enumerate(freqs):
        experts = list(range(freq.shape[1]))
        fig.add_trace(
            go.Heatmap(
                z=freq,
                x=experts,
                y=[_short(n) for n in layers],
                zmin=0,
                zmax=zmax,
                colorscale="Blues",
                showscale=t == cols - 1,
                colorbar=dict(
                    title=dict(text="share of selections", side="right"),
                    x=1.02,
                    xanchor="left",
                    thickness=14,
                    tickformat=".0%",
                ),
                hovertemplate="%{y}, expert %{x}: %{z:.0%}<extra></extra>",
            ),
            row=1,
            col=t + 1,
        )
        fig.update_xaxes(
            title_text="expert",
            tickmode="array",
            tickvals=expert_ticks(len(experts)),
            tickangle=0,
            row=1,
            col=t + 1,
        )
        marks = _frozen_cells(freq, layers, frozen_history[t - 1]) if t else []
        if marks:
            xs, ys, shares = zip(*marks, strict=True)
            fig.add_trace(
                go.Scatter(
                    x=list(xs),
                    y=list(ys),
                    customdata=list(shares),
                    mode="markers",
                    showlegend=not legend_shown,
                    legendgroup="frozen",
                    name="x: frozen before this task",
                    marker=frozen_marker(len(experts), cols),
                    hovertemplate="%{y}, expert %{x}: %{customdata:.0%} (frozen before this task)"
                    "<extra></extra>",
                ),
                row=1,
                col=t + 1,
            )
            legend_shown = True
    fig.update_layout(
        title=f"Expert selection per task ({tower} tower)",
        height=400,
        autosize=True,
        margin=dict(t=90, b=110),
        legend=dict(orientation="h", x=0, xanchor="left", y=0, yanchor="bottom", yref="container"),
    )
    return fig


def discrete_colorscale(colours: Sequence[str]) -> list[list]:
    """A colour scale of equal, hard-edged bands, one per colour: with ``zmin`` 0.5 and
    ``zmax`` n + 0.5 the whole number k gets ``colours[k - 1]`` and nothing in between."""
    n = len(colours)
    scale: list[list] = []
    for k, c in enumerate(colours):
        scale += [[k / n, c], [(k + 1) / n, c]]
    return scale


def frozen_timeline(
    frozen_history: Counts, task_names: Sequence[str], tower: str = "image"
) -> go.Figure:
    """When each expert joined the frozen set: layer x expert, one colour per task (a discrete
    scale, its ticks the whole task numbers and names)."""
    layers = tower_layers(list(frozen_history[0]), tower)
    n_experts = 1 + max((e for h in frozen_history for n in layers for e in h[n]), default=0)
    when = np.full((len(layers), n_experts), np.nan)
    for t in reversed(range(len(frozen_history))):
        for i, n in enumerate(layers):
            for e in frozen_history[t][n]:
                when[i, e] = t + 1
    text = [[task_names[int(v) - 1] if not np.isnan(v) else "" for v in row] for row in when]
    n_tasks = len(task_names)
    fig = go.Figure(
        go.Heatmap(
            z=when,
            x=list(range(n_experts)),
            y=[_short(n) for n in layers],
            text=text,
            colorscale=discrete_colorscale(task_colors(n_tasks)),
            zmin=0.5,
            zmax=n_tasks + 0.5,
            xgap=1,
            ygap=1,
            colorbar=dict(
                title=dict(text="frozen after task", side="right"),
                tickmode="array",
                tickvals=list(range(1, n_tasks + 1)),
                ticktext=[f"{k}: {name}" for k, name in enumerate(task_names, start=1)],
            ),
            hovertemplate="%{y}, expert %{x}: frozen after %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"The frozen set grows ({tower} tower; blank: still trainable)",
        xaxis=dict(title="expert", tickmode="array", tickvals=expert_ticks(n_experts, most=8)),
        height=max(320, 140 + 24 * n_tasks),
        autosize=True,
    )
    return fig


def routing_entropy(selections: Counts, task_names: Sequence[str]) -> go.Figure:
    """Entropy (bits) of each layer's expert-selection distribution, per task: low entropy
    means the router has specialised on a few experts; the dashed line is the most it can be,
    log2(experts), every expert chosen equally. One colour per depth (darker: shallower),
    solid for the image tower, dotted for the text tower."""
    fig = go.Figure()
    n_experts = max(len(c) for c in selections[0].values())
    for tower in ("image", "text"):
        layers = tower_layers(list(selections[0]), tower)
        colours = sample_colorscale("Viridis", list(np.linspace(0, 0.85, len(layers))))
        for n, colour in zip(layers, colours, strict=True):
            values = []
            for counts in selections:
                p = selection_frequency(counts, [n])[0]
                p = p[p > 0]
                values.append(float(-(p * np.log2(p)).sum()))
            fig.add_trace(
                go.Scatter(
                    x=list(task_names),
                    y=values,
                    mode="lines+markers",
                    name=f"{tower} {_short(n)}",
                    line=dict(color=colour, dash="solid" if tower == "image" else "dot"),
                )
            )
    fig.add_hline(
        y=np.log2(n_experts),
        line_dash="dash",
        line_color="black",
        annotation_text=f"uniform (maximum): log2({n_experts}) = {np.log2(n_experts):.2f} bits",
        annotation_position="top left",  # nothing lies above the maximum
    )
    fig.update_layout(
        title="Routing entropy per layer and task",
        xaxis_title="task being trained (its router's choices)",
        yaxis=dict(title="entropy (bits)", range=[0, 1.15 * np.log2(max(n_experts, 2))]),
        height=380,
        autosize=True,
    )
    return fig


def ddas_error_histograms(best_errors: Mapping[str, np.ndarray], threshold: float) -> go.Figure:
    """Distribution of the winning reconstruction error for each task's test images, one row
    per task (its own colour, the same bins and x axis in every row), with the threshold above
    which an image goes to the backbone drawn in each row."""
    names = list(best_errors)
    errors = [np.asarray(best_errors[n], dtype=float) for n in names]
    everything = np.concatenate([*errors, [threshold]])
    edges = np.histogram_bin_edges(everything, bins=40)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.02)
    for row, (name, values, colour) in enumerate(
        zip(names, errors, task_colors(len(names)), strict=True), start=1
    ):
        fig.add_trace(
            go.Histogram(
                x=values,
                name=name,
                marker_color=colour,
                xbins=dict(start=edges[0], end=edges[-1], size=edges[1] - edges[0]),
                showlegend=False,
                hovertemplate=f"{name}: %{{y}} images with error %{{x}}<extra></extra>",
            ),
            row=row,
            col=1,
        )
        fig.add_vline(x=threshold, line_dash="dash", line_color="black", row=row, col=1)
        fig.update_yaxes(nticks=3, row=row, col=1)
        fig.add_annotation(  # the task's name right of its row, after a square of its colour
            text=f"<span style='color:{colour}'>■</span> {name}",
            x=1.01,
            y=0.5,
            xref="x domain",
            yref=f"y{row if row > 1 else ''} domain",
            xanchor="left",
            showarrow=False,
        )
    fig.add_annotation(
        x=threshold,
        y=1,
        xref="x",
        yref="paper",
        yanchor="bottom",
        text=f"threshold {threshold:.4f}",
        showarrow=False,
    )
    fig.update_xaxes(title_text="reconstruction error (MSE)", row=len(names), col=1)
    fig.update_yaxes(title_text="images", row=(len(names) + 1) // 2, col=1)
    fig.update_layout(
        title="DDAS: best reconstruction error per test image, one row per task",
        height=140 + 70 * len(names),
        autosize=True,
        bargap=0.05,
        margin=dict(t=90, r=140),
    )
    return fig


def ddas_confusion(
    confusion: np.ndarray, true_names: Sequence[str], learned_names: Sequence[str]
) -> go.Figure:
    """Row-normalised DDAS choices: true task x (chosen task, or 'backbone (OOD)')."""
    m = np.asarray(confusion, dtype=float)
    share = 100 * m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    cols = [*learned_names, "backbone (OOD)"]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=cols,
            y=list(true_names),
            zmin=0,
            zmax=100,
            colorscale="Greens",
            text=[[f"{v:.0f}" for v in r] for r in share],
            texttemplate="%{text}",
            colorbar=dict(title="% of images"),
        )
    )
    fig.update_layout(
        title="DDAS task selection (rows: true task)",
        xaxis_title="selected",
        yaxis=dict(autorange="reversed"),
        height=420,
    )
    return fig


def ddas_routes(report) -> dict[str, dict[str, float]]:
    """Where each task's test images went under one :class:`~clviz.methods.moe.DDASReport`,
    in % of the task's images: its own router, another router, the backbone because the
    generic autoencoder won, the backbone because the error passed the threshold."""
    routes = {}
    for row, name in zip(report.confusion, report.best_errors, strict=True):
        n = max(sum(row), 1)
        own = row[report.learned.index(name)] if name in report.learned else 0
        generic, threshold = report.by_generic.get(name, 0.0), report.by_threshold.get(name, 0.0)
        routes[name] = {
            "own router": 100.0 * own / n,
            "another router": 100.0 * (n - own - row[-1]) / n,
            "backbone: generic autoencoder won": generic,
            "backbone: error above threshold": threshold,
        }
    return routes


ROUTE_COLOURS = ("#2ca02c", "#d62728", "#1f77b4", "#9467bd")


def same_routes(a, b) -> bool:
    """Whether two :class:`~clviz.methods.moe.DDASReport` send every task's images to the
    same destinations in the same shares (:func:`ddas_routes`)."""
    ra, rb = ddas_routes(a), ddas_routes(b)
    return ra.keys() == rb.keys() and all(
        np.allclose(list(ra[n].values()), list(rb[n].values())) for n in ra
    )


def why_same(name: str, report, other_name: str, other) -> str:
    """Why two reports with the same routes agree, from their numbers: the same threshold, or
    thresholds that no decision's winning task error lies between (or passes at all). The
    threshold only acts on decisions the task autoencoders won, and raising it can only send
    fewer of them to the backbone: same routes mean not one of them changed side."""
    head = f"“{name}” shows the same routes as “{other_name}”"
    lo, hi = sorted((float(report.threshold), float(other.threshold)))
    if np.isclose(lo, hi):
        return f"{head}, with the same threshold {lo:.4f}"
    if not any(report.by_threshold.values()):
        why = (
            f"the threshold sent nothing to the backbone in either: no winning task error "
            f"passes {lo:.4f}, let alone {hi:.4f}"
        )
    else:
        why = f"no winning task error lies between their thresholds {lo:.4f} and {hi:.4f}"
    errors = np.concatenate([np.asarray(v, dtype=float) for v in report.best_errors.values()])
    between = 100.0 * float(np.mean((errors > lo) & (errors <= hi))) if len(errors) else 0.0
    if between:
        why += f" (though {between:.1f}% of single test images' best errors lie between the two)"
    return f"{head}: {why}"


def repeat_notes(reports: Mapping[str, object], width: int = 90) -> list[str]:
    """Lines (at most ``width`` characters) explaining each report whose routes repeat an
    earlier one's (:func:`why_same`); none when every panel differs."""
    names = list(reports)
    notes = []
    for k, name in enumerate(names):
        twin = next((m for m in names[:k] if same_routes(reports[m], reports[name])), None)
        if twin is not None:
            notes.append(why_same(name, reports[name], twin, reports[twin]))
    return [line for note in notes for line in wrap(note, width)]


def ddas_mechanisms(reports: Mapping[str, object]) -> go.Figure:
    """One panel per decision mode (a name -> :class:`~clviz.methods.moe.DDASReport`): for
    each task, the share of its test images DDAS sent to each destination
    (:func:`ddas_routes`), stacked to 100%. Each panel's title gives its threshold; a panel
    that repeats an earlier one is explained under the figure's title (:func:`why_same`)."""
    titles = [f"{n}<br><sup>threshold {r.threshold:.4f}</sup>" for n, r in reports.items()]
    fig = make_subplots(
        rows=1,
        cols=len(reports),
        shared_yaxes=True,
        subplot_titles=titles,
        horizontal_spacing=0.04,
    )
    for col, report in enumerate(reports.values(), start=1):
        routes = ddas_routes(report)
        names = list(routes)
        for route, colour in zip(next(iter(routes.values())), ROUTE_COLOURS, strict=True):
            fig.add_trace(
                go.Bar(
                    y=names,
                    x=[routes[n][route] for n in names],
                    orientation="h",
                    name=route,
                    marker_color=colour,
                    legendgroup=route,
                    showlegend=col == 1,
                    hovertemplate=f"%{{y}}: %{{x:.1f}}% {route}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="% of test images", range=[0, 100], row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    title = "Where DDAS sent each task's test images"
    lines = repeat_notes(reports)
    fig.update_layout(
        barmode="stack",
        title=dict(
            text="<br>".join([title, *(f"<sup>{line}</sup>" for line in lines)]),
            yref="container",
            y=1,
            yanchor="top",
            pad=dict(t=20),
        ),
        height=240 + 28 * len(next(iter(reports.values())).confusion) + 20 * len(lines),
        autosize=True,
        margin=dict(t=90 + 20 * len(lines), b=90),
        legend=dict(orientation="h", x=0, xanchor="left", y=0, yanchor="bottom", yref="container"),
    )
    return fig


def frozen_reuse(selections: Counts, frozen_history: Counts) -> list[float]:
    """For each task after the first: the share of its router choices (all layers, both
    towers) that went to experts frozen by earlier tasks. Knowledge reuse, as one number."""
    shares = []
    for t in range(1, len(selections)):
        chosen = sum(sum(c) for c in selections[t].values())
        reused = sum(c[e] for n, c in selections[t].items() for e in frozen_history[t - 1][n])
        shares.append(reused / chosen if chosen else 0.0)
    return shares
