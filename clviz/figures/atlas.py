"""ATLAS figures: alpha weights per task x adapter, experience vs new share, protocol bars.

The alpha figures read an :class:`~clviz.methods.atlas.AlphaRecord` (the ``record`` of an
ATLAS run, or of the protocol's upstream ATLAS run); the protocol figures read the results of
:func:`clviz.experiments.atlas_protocol.run_protocol`, by order.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from clviz.experiments.atlas_protocol import ABLATIONS, LEARNERS, ProtocolResult
from clviz.figures.colors import method_color
from clviz.methods.atlas import AlphaRecord


def _alpha_matrix(record: AlphaRecord, site: str | None) -> list[list[float | None]]:
    """Tasks x adapters mean alpha at ``site`` (None: the mean over the sites with data)."""
    n = len(record.adapter_owner)
    rows = []
    for task in record.query_sets:
        sites = record.alphas.get(task, {})
        chosen = [sites.get(site)] if site is not None else list(sites.values())
        chosen = [a for a in chosen if a]
        row: list[float | None] = []
        for j in range(n):
            vals = [a[j] for a in chosen if j < len(a)]
            row.append(sum(vals) / len(vals) if vals else None)
        rows.append(row)
    return rows


def _site_label(info: list) -> str:
    tower, layer, site = info
    return f"{tower} tower · layer {layer} · {site} output"


def alpha_heatmap(record: AlphaRecord, title: str = "ATLAS alpha weights") -> go.Figure:
    """Mean alpha per task (rows, its own query set) x adapter (columns, by the task that added
    it); a dropdown picks the mean over all sites or one site (tower, layer, attention/MLP)."""
    owners = [f"#{j} ({o})" for j, o in enumerate(record.adapter_owner)]
    tasks = record.query_sets
    choices = [("mean over all sites", None)] + [
        (_site_label(info), name) for name, info in record.sites.items()
    ]
    fig = go.Figure()
    for k, (label, site) in enumerate(choices):
        z = _alpha_matrix(record, site)
        text = [["" if v is None else f"{v:.2f}" for v in row] for row in z]
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=owners,
                y=tasks,
                text=text,
                texttemplate="%{text}",
                zmin=0,
                zmax=1,
                colorscale="Viridis",
                colorbar={"title": "alpha"},
                visible=k == 0,
                name=label,
                hovertemplate="task %{y}<br>adapter %{x}<br>alpha %{z:.3f}<extra></extra>",
            )
        )
    buttons = [
        {
            "label": label,
            "method": "update",
            "args": [{"visible": [i == k for i in range(len(choices))]}, {}],
        }
        for k, (label, _) in enumerate(choices)
    ]
    fig.update_layout(
        title=title,
        xaxis_title="adapter (added by)",
        yaxis_title="task (its query set)",
        yaxis={"autorange": "reversed"},
        updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.18, "xanchor": "right"}],
        height=360 + 18 * len(tasks),
    )
    return fig


def alpha_site_grid(record: AlphaRecord, adapter: int | None = None) -> go.Figure:
    """Alpha per task x site (layer and attention/MLP output, one panel per tower) for one
    ``adapter`` (None: the last adapter each task uses, its own new one when it added one)."""
    towers = ["image", "text"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{t} tower" for t in towers])
    tasks = record.query_sets
    for c, tower in enumerate(towers, start=1):
        names = [n for n, info in record.sites.items() if info[0] == tower]
        labels = [f"L{record.sites[n][1]} {record.sites[n][2]}" for n in names]
        z = []
        for task in tasks:
            row = []
            for n in names:
                a = record.alphas.get(task, {}).get(n)
                j = (len(a) - 1 if adapter is None else adapter) if a else None
                row.append(a[j] if a and j is not None and j < len(a) else None)
            z.append(row)
        fig.add_trace(
            go.Heatmap(z=z, x=labels, y=tasks, zmin=0, zmax=1, colorscale="Viridis"), 1, c
        )
    which = "each task's last adapter" if adapter is None else f"adapter #{adapter}"
    fig.update_layout(title=f"alpha of {which}, per layer and site", height=380)
    fig.update_yaxes(autorange="reversed")
    return fig


def experience_share_bars(record: AlphaRecord, title: str | None = None) -> go.Figure:
    """Per task: the share of its summed alpha on old adapters (experience) vs its new one."""
    shares = record.experience_share
    tasks = [t for t in record.query_sets if shares.get(t) is not None]
    exp = [100 * shares[t] for t in tasks]
    fig = go.Figure(
        [
            go.Bar(x=tasks, y=exp, name="experience (old adapters)", marker_color="#4c78a8"),
            go.Bar(x=tasks, y=[100 - e for e in exp], name="new adapter", marker_color="#f58518"),
        ]
    )
    fig.update_layout(
        barmode="stack",
        title=title or "Where each task's output comes from (share of summed alpha)",
        yaxis_title="% of summed alpha",
        height=380,
    )
    return fig


def protocol_bars(
    results: dict[str, ProtocolResult],
    title: str = "ATLAS protocol: upstream forgetting and downstream transfer, per order",
) -> go.Figure:
    """Left: mean upstream forgetting, ATLAS vs continual fine-tuning, per order. Right:
    downstream low-shot transfer (accuracy minus a fresh adapter's) per ablation and order."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["upstream forgetting (points)", "downstream transfer vs fresh adapter"],
    )
    orders = list(results)
    for method in ("atlas", "finetune"):
        vals = []
        for o in orders:
            f = results[o].forgetting(method)
            vals.append(sum(f) / len(f))
        fig.add_trace(
            go.Bar(x=orders, y=vals, name=method, marker_color=method_color(method)), 1, 1
        )
    colors = {"stage1": "#72b7b2", "stage2": "#f58518", "both": "#54a24b"}
    for stages in ABLATIONS:
        vals = [results[o].downstream.transfer(stages) for o in orders]
        fig.add_trace(
            go.Bar(
                x=orders,
                y=vals,
                name=f"{stages} only" if stages != "both" else "both stages",
                marker_color=colors[stages],
            ),
            1,
            2,
        )
    fig.update_layout(barmode="group", height=400, title=title, autosize=True)
    return fig


def downstream_bars(
    results: dict[str, ProtocolResult],
    title: str = "Downstream low-shot accuracy per task and learner (one panel per order)",
) -> go.Figure:
    """Downstream low-shot accuracy per task, ablation and fresh adapter, one panel per order."""
    orders = list(results)
    fig = make_subplots(rows=1, cols=len(orders), subplot_titles=orders, shared_yaxes=True)
    colors = {"stage1": "#72b7b2", "stage2": "#f58518", "both": "#54a24b", "fresh": "#9d9d9d"}
    for c, o in enumerate(orders, start=1):
        d = results[o].downstream
        for stages in LEARNERS:
            fig.add_trace(
                go.Bar(
                    x=d.tasks,
                    y=d.accuracy[stages],
                    name=stages,
                    marker_color=colors[stages],
                    showlegend=c == 1,
                ),
                1,
                c,
            )
    fig.update_layout(
        barmode="group",
        height=400,
        title=title,
        yaxis_title="low-shot accuracy (%)",
        autosize=True,
    )
    return fig
