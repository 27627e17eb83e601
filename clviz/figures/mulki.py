"""MulKI figures: teacher weights per task, prototype-text alignment and the modality gap across
the stream, one task's relations and prototype similarities, and the stage ablation."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _tasks(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    record = results.get("record", {})
    if "tasks" not in record:
        raise ValueError("these results carry no MulKI record; pass the results of a 'mulki' run")
    return record["tasks"]


def teacher_weights(results: Mapping[str, Any]) -> go.Figure:
    """Left: per task, the share of samples in each bin of the pretrained teacher's weight (the
    previous-task teacher gets the rest). Right: its median and 10-90 / 25-75 percent bands
    across the stream. On the first task both teachers are the pretrained model: 1/2 each."""
    tasks = _tasks(results)
    names = [t["task"] for t in tasks]
    bins = results["record"].get("weight_bins", 10)
    edges = np.linspace(0, 1, bins + 1)
    share = []
    for t in tasks:
        h = np.asarray(t["teacher_weights"].get("histogram", [0] * bins), float)
        share.append(h / max(h.sum(), 1))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("distribution per task", "across the stream"),
        horizontal_spacing=0.12,
    )
    fig.add_trace(
        go.Heatmap(
            z=np.asarray(share).T,
            x=names,
            y=[f"{a:.1f}-{b:.1f}" for a, b in itertools.pairwise(edges)],
            colorscale="Blues",
            colorbar=dict(title="share", x=0.44),
            hovertemplate="%{x}<br>weight %{y}: %{z:.0%}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    q = np.asarray([t["teacher_weights"].get("quantiles", [np.nan] * 5) for t in tasks])
    for lo, hi, alpha in ((0, 4, 0.15), (1, 3, 0.3)):
        fig.add_trace(
            go.Scatter(
                x=names + names[::-1],
                y=list(q[:, hi]) + list(q[::-1, lo]),
                fill="toself",
                fillcolor=f"rgba(31,119,180,{alpha})",
                line=dict(width=0),
                name=f"{['10', '25'][lo]}-{['75', '90'][hi - 3]} %",
                hoverinfo="skip",
            ),
            row=1,
            col=2,
        )
    fig.add_trace(
        go.Scatter(
            x=names, y=q[:, 2], mode="lines+markers", name="median", line=dict(color="#1f77b4")
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(title_text="weight of the pretrained teacher", row=1, col=1)
    fig.update_yaxes(range=[0, 1], title_text="weight of the pretrained teacher", row=1, col=2)
    fig.update_layout(title="Stage 3: per-sample teacher weights", height=430, width=1000)
    return fig


def alignment_and_gap(results: Mapping[str, Any]) -> go.Figure:
    """Per task, at its start and end: mean cosine of each class's prototype (and of the
    model's image class mean) with its class text, and the modality gap (distance between the
    image and text centroids)."""
    tasks = _tasks(results)
    names = [t["task"] for t in tasks]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("prototype-to-text alignment (cosine)", "modality gap"),
        horizontal_spacing=0.1,
    )
    series = (
        ("prototype_text_before", "prototype, start of task", "dot"),
        ("prototype_text_after", "prototype, end of task", "solid"),
        ("class_mean_text_after", "image class mean, end of task", "dash"),
    )
    for key, label, dash in series:
        fig.add_trace(
            go.Scatter(x=names, y=[t[key] for t in tasks], name=label, line=dict(dash=dash)),
            row=1,
            col=1,
        )
    for key, label, dash in (
        ("modality_gap_before", "gap, start of task", "dot"),
        ("modality_gap_after", "gap, end of task", "solid"),
    ):
        fig.add_trace(
            go.Scatter(x=names, y=[t[key] for t in tasks], name=label, line=dict(dash=dash)),
            row=1,
            col=2,
        )
    fig.update_layout(title="Stage 1 across the stream", height=430, width=1000)
    return fig


def prototype_similarity(walk: Mapping[str, Any]) -> go.Figure:
    """Cosine of every prototype (rows) with every class text (columns), before and after
    training one task: stage 1 pulls the diagonal up."""
    names = walk["classnames"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("start of task", "end of task"))
    for i, when in enumerate(("before", "after"), start=1):
        fig.add_trace(
            go.Heatmap(
                z=walk[when]["similarity"],
                x=names,
                y=names,
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
                reversescale=True,
                showscale=i == 2,
                hovertemplate="prototype %{y}<br>text %{x}: %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=i,
        )
        fig.update_yaxes(autorange="reversed", showticklabels=i == 1, row=1, col=i)
    fig.update_layout(title=f"Prototype-to-text cosine on {walk['task']}", height=430, width=900)
    return fig


def relations(walk: Mapping[str, Any], when: str = "after") -> go.Figure:
    """One image's relation distributions: to the prototypes (intra-modal) and to the class texts
    (inter-modal), from both teachers and the student."""
    names = walk["classnames"]
    rel = walk[when]["relations"]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("intra-modal: image to prototypes", "inter-modal: image to class texts"),
    )
    for j, kind in enumerate(("intra", "inter"), start=1):
        for k, (source, r) in enumerate(rel.items()):
            fig.add_trace(
                go.Bar(
                    x=names,
                    y=r[kind],
                    name=source,
                    legendgroup=source,
                    showlegend=j == 1,
                    marker_color=("#1f77b4", "#ff7f0e", "#2ca02c")[k % 3],
                ),
                row=1,
                col=j,
            )
    true = names[walk["label"]]
    fig.update_layout(
        barmode="group",
        title=f"Stage 2: one {walk['task']} image (true class: {true}), {when} training",
        height=420,
        width=1000,
    )
    return fig


def weight_histogram(weights: Sequence[float], title: str = "") -> go.Figure:
    """Histogram of per-sample weights of the pretrained teacher (the other teacher: 1 - w)."""
    fig = go.Figure(go.Histogram(x=list(weights), xbins=dict(start=0, end=1, size=0.05)))
    fig.update_layout(
        title=title or "Stage 3: weight of the pretrained teacher, per sample",
        xaxis_title="weight of the pretrained teacher",
        yaxis_title="samples",
        xaxis_range=[0, 1],
        height=380,
        width=700,
    )
    return fig


def ablation_bars(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Transfer, Avg and Last of each ablation variant (rows of
    :func:`clviz.mulki.ablation.ablation_rows`)."""
    fig = go.Figure()
    for metric, label in (("transfer", "Transfer"), ("avg", "Avg"), ("last", "Last")):
        values = [r[metric] for r in rows]
        fig.add_trace(
            go.Bar(
                x=[r["variant"] for r in rows],
                y=values,
                name=label,
                text=[f"{v:.1f}" for v in values],
                textposition="outside",
            )
        )
    fig.update_layout(
        barmode="group",
        title="MulKI ablation: one stage off at a time",
        yaxis_title="percent",
        height=440,
    )
    return fig


def ablation_table(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """The ablation as a table figure."""
    head = ["variant", "Transfer", "Δ Transfer", "Avg", "Last", "BWT", "seconds"]
    cells = [
        [r["variant"] for r in rows],
        [f"{r['transfer']:.1f}" for r in rows],
        [f"{r['delta_transfer']:+.1f}" for r in rows],
        [f"{r['avg']:.1f}" for r in rows],
        [f"{r['last']:.1f}" for r in rows],
        [f"{r['bwt']:+.1f}" for r in rows],
        [f"{r['seconds']:.0f}" for r in rows],
    ]
    fig = go.Figure(go.Table(header=dict(values=head), cells=dict(values=cells)))
    fig.update_layout(title="MulKI ablation", height=80 + 30 * len(rows), width=800)
    return fig
