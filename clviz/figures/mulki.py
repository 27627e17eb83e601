"""MulKI figures: teacher weights per task, prototype-text alignment and the modality gap across
the stream (from a run's :class:`~clviz.methods.mulki.MulKIRecord`), one task's relations and
prototype similarities (from :func:`~clviz.experiments.mulki_walkthrough.walk_through`), and
the stage ablation."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from clviz.core.result import RunResult
from clviz.errors import InputError
from clviz.experiments.mulki_walkthrough import Walk
from clviz.figures.forgetting import METRIC_LABELS, grouped_bars
from clviz.methods.mulki import MulKIRecord, MulKITaskRecord


def _tasks(result: RunResult) -> list[MulKITaskRecord]:
    if not isinstance(result.record, MulKIRecord):
        raise InputError("this result carries no MulKI record; pass the result of a 'mulki' run")
    return result.record.tasks


def teacher_weights(result: RunResult) -> go.Figure:
    """Left: per task, the share of samples in each bin of the pretrained teacher's weight (the
    previous-task teacher gets the rest). Right: its median and 10-90 / 25-75 percent bands
    across the stream. On the first task both teachers are the pretrained model: 1/2 each."""
    tasks = _tasks(result)
    names = [t.task for t in tasks]
    bins = result.record.weight_bins
    edges = np.linspace(0, 1, bins + 1)
    share = []
    for t in tasks:
        h = np.asarray(t.teacher_weights.histogram or [0] * bins, float)
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
    q = np.asarray([t.teacher_weights.quantiles or [np.nan] * 5 for t in tasks])
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
    fig.update_layout(title="Stage 3: per-sample teacher weights", height=430, autosize=True)
    return fig


def alignment_and_gap(result: RunResult) -> go.Figure:
    """Per task, at its start and end: mean cosine of each class's prototype (and of the
    model's image class mean) with its class text, and the modality gap (distance between the
    image and text centroids)."""
    tasks = _tasks(result)
    names = [t.task for t in tasks]
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
            go.Scatter(
                x=names, y=[getattr(t, key) for t in tasks], name=label, line=dict(dash=dash)
            ),
            row=1,
            col=1,
        )
    for key, label, dash in (
        ("modality_gap_before", "gap, start of task", "dot"),
        ("modality_gap_after", "gap, end of task", "solid"),
    ):
        fig.add_trace(
            go.Scatter(
                x=names, y=[getattr(t, key) for t in tasks], name=label, line=dict(dash=dash)
            ),
            row=1,
            col=2,
        )
    fig.update_layout(title="Stage 1 across the stream", height=430, autosize=True)
    return fig


def prototype_similarity(walk: Walk) -> go.Figure:
    """Cosine of every prototype (rows) with every class text (columns), before and after
    training one task: stage 1 pulls the diagonal up."""
    names = walk.classnames
    fig = make_subplots(rows=1, cols=2, subplot_titles=("start of task", "end of task"))
    for i, moment in enumerate((walk.before, walk.after), start=1):
        fig.add_trace(
            go.Heatmap(
                z=moment.similarity,
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
    fig.update_layout(title=f"Prototype-to-text cosine on {walk.task}", height=430, autosize=True)
    return fig


def relations(walk: Walk, when: str = "after") -> go.Figure:
    """One image's relation distributions: to the prototypes (intra-modal) and to the class texts
    (inter-modal), from both teachers and the student, ``when`` "before" or "after" training."""
    names = walk.classnames
    rel = getattr(walk, when).relations
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
                    y=getattr(r, kind),
                    name=source,
                    legendgroup=source,
                    showlegend=j == 1,
                    marker_color=("#1f77b4", "#ff7f0e", "#2ca02c")[k % 3],
                ),
                row=1,
                col=j,
            )
    true = names[walk.label]
    fig.update_layout(
        barmode="group",
        title=f"Stage 2: one {walk.task} image (true class: {true}), {when} training",
        height=420,
        autosize=True,
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
        autosize=True,
    )
    return fig


def ablation_bars(results: Mapping[str, RunResult]) -> go.Figure:
    """Transfer, Avg and Last of each ablation variant (label -> result)."""
    metrics = ("transfer", "avg", "last")
    return grouped_bars(
        list(results),
        {METRIC_LABELS[m]: [getattr(r.metrics, m) for r in results.values()] for m in metrics},
        "MulKI ablation: one stage off at a time",
    )
