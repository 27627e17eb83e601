"""Drift figures: the probe's UMAP moving over the stream, and the drift measures as curves.

Inputs come from :mod:`clviz.analysis.drift`: a
:class:`~clviz.analysis.drift.umap_map.DriftMap` for the maps, and ``drift_curves`` dicts (one
per method) for the curves. Checkpoint 0 is the initial
backbone, checkpoint t the model after task t.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from clviz.analysis.drift.extract import FINAL
from clviz.analysis.drift.umap_map import DriftMap
from clviz.figures.colors import method_colors, task_color


def _frame_traces(dmap: DriftMap, run: str, index: int) -> list[go.Scatter]:
    """One image trace and one text trace per task (so the legend names the tasks)."""
    rec = dmap.records[run]
    img, txt = dmap.image[run][index], dmap.text[run][index]
    traces = []
    for t, name in enumerate(rec.tasks):
        rows = (rec.task_ids == t).numpy()
        classes = rec.classnames[t]
        traces.append(
            go.Scatter(
                x=img[rows, 0],
                y=img[rows, 1],
                mode="markers",
                name=name,
                legendgroup=name,
                marker=dict(size=5, color=task_color(t), opacity=0.7),
                text=[classes[c] for c in rec.labels[rows].tolist()],
                hovertemplate=f"{name}: %{{text}} (image)<extra></extra>",
            )
        )
        trows = (rec.text_task_ids == t).numpy()
        traces.append(
            go.Scatter(
                x=txt[trows, 0],
                y=txt[trows, 1],
                mode="markers",
                name=f"{name} (class texts)",
                legendgroup=name,
                showlegend=False,
                marker=dict(
                    size=11,
                    symbol="diamond",
                    color=task_color(t),
                    line=dict(width=1.2, color="black"),
                ),
                text=[classes[c] for c in rec.text_labels[trows].tolist()],
                hovertemplate=f"{name}: '%{{text}}' (text)<extra></extra>",
            )
        )
    return traces


def _axis_ranges(dmap: DriftMap, run: str) -> tuple[list[float], list[float]]:
    pts = np.concatenate(dmap.image[run] + dmap.text[run])
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.05 * (hi - lo)
    return [float(lo[0] - pad[0]), float(hi[0] + pad[0])], [
        float(lo[1] - pad[1]),
        float(hi[1] + pad[1]),
    ]


def umap_frame(dmap: DriftMap, run: str, index: int) -> go.Figure:
    """The probe's map at checkpoint ``index`` of ``run``: dots are images, diamonds class
    texts, colours tasks. Axes are fixed across checkpoints, so frames can be compared."""
    labels = dmap.records[run].checkpoints
    if not 0 <= index < len(labels):
        raise IndexError(f"checkpoint {index} out of range 0..{len(labels) - 1} for {run!r}")
    xr, yr = _axis_ranges(dmap, run)
    fig = go.Figure(_frame_traces(dmap, run, index))
    fig.update_layout(
        title=f"{run}: probe features at checkpoint {index} ({labels[index]})",
        xaxis=dict(range=xr, title="UMAP 1"),
        yaxis=dict(range=yr, title="UMAP 2"),
        height=520,
        autosize=True,
    )
    return fig


#: Pixels below the plot area where the animation controls start (clear of the x-axis tick
#: labels and title), and the bottom margin that holds them.
CONTROLS_TOP = 60
CONTROLS_MARGIN = 180


def umap_animation(dmap: DriftMap, run: str) -> go.Figure:
    """The probe's map over the whole stream, with a slider and play / pause buttons.

    The buttons sit in the left margin, right-aligned to where the slider starts (x = 0), on the
    height of the slider's rail; the slider's current-value label ("checkpoint k: task") sits
    above the rail, left-aligned: nothing overlaps at any width."""
    labels = dmap.records[run].checkpoints
    fig = umap_frame(dmap, run, 0)
    fig.frames = [
        go.Frame(data=_frame_traces(dmap, run, k), name=str(k)) for k in range(len(labels))
    ]
    steps = [
        dict(
            method="animate",
            label=f"{k}: {label}",
            args=[[str(k)], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
        )
        for k, label in enumerate(labels)
    ]
    fig.update_layout(
        title=f"{run}: how the probe's features move, task after task",
        sliders=[
            dict(
                steps=steps,
                active=0,
                x=0,
                xanchor="left",
                len=1.0,
                y=0,
                yanchor="top",
                pad=dict(t=CONTROLS_TOP, b=10),
                currentvalue=dict(
                    prefix="checkpoint ", xanchor="left", offset=12, font=dict(size=14)
                ),
            )
        ],
        updatemenus=[
            dict(
                type="buttons",
                direction="down",
                showactive=False,
                x=0,
                xanchor="right",
                y=0,
                yanchor="top",
                # level with the slider's rail, below its current-value label
                pad=dict(t=CONTROLS_TOP + 35, r=12),
                buttons=[
                    dict(
                        label="▶ play",
                        method="animate",
                        args=[None, dict(frame=dict(duration=700, redraw=True), fromcurrent=True)],
                    ),
                    dict(
                        label="❚❚ pause",
                        method="animate",
                        args=[[None], dict(mode="immediate", frame=dict(duration=0))],
                    ),
                ],
            )
        ],
        height=520 + CONTROLS_MARGIN,
        margin=dict(l=110, b=CONTROLS_MARGIN),
    )
    return fig


def _layer_label(name: str) -> str:
    if name == FINAL:
        return "final embedding"
    return f"block {name.rsplit('.', 1)[1]}"


def drift_comparison(
    curves_by_method: Mapping[str, Mapping[str, Any]],
    checkpoints: Sequence[str],
    layer: str = FINAL,
) -> go.Figure:
    """Four panels over the stream, one line per method: image CKA and k-NN accuracy of
    ``layer``, class-centroid shift and the modality gap of the final embeddings."""
    panels = [
        ("cka", f"linear CKA vs initial ({_layer_label(layer)})"),
        ("knn", f"5-NN accuracy % ({_layer_label(layer)})"),
        ("centroid_shift", "class-centroid shift (1 - cos)"),
        ("modality_gap", "modality gap |mean image - mean text|"),
    ]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in panels])
    colors = method_colors(curves_by_method)
    for name, curves in curves_by_method.items():
        for p, (key, _) in enumerate(panels):
            values = curves[key][layer] if isinstance(curves[key], Mapping) else curves[key]
            fig.add_trace(
                go.Scatter(
                    x=list(checkpoints),
                    y=values,
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=p == 0,
                    line=dict(color=colors[name]),
                    hovertemplate=f"{name}<br>after %{{x}}: %{{y:.3f}}<extra></extra>",
                ),
                row=p // 2 + 1,
                col=p % 2 + 1,
            )
    fig.update_xaxes(title_text="model after task", row=2)
    fig.update_layout(title="Representation drift over the stream", height=660, autosize=True)
    return fig


def cka_layers(curves: Mapping[str, Any], checkpoints: Sequence[str], title: str = "") -> go.Figure:
    """Linear CKA vs the initial backbone for every layer (rows) at every checkpoint: where in
    the network the representation changed, image tower above text tower."""
    rows, names = [], []
    for tower, key in (("image", "cka"), ("text", "text_cka")):
        for layer, values in curves[key].items():
            rows.append(values)
            names.append(f"{tower} · {_layer_label(layer)}")
    z = np.asarray(rows)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(checkpoints),
            y=names,
            zmin=min(0.5, float(z.min())),
            zmax=1,
            colorscale="Magma",
            text=[[f"{v:.2f}" for v in r] for r in z],
            texttemplate="%{text}",
            colorbar=dict(title="CKA"),
            hovertemplate="%{y}, after %{x}: CKA %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or "Linear CKA vs the initial backbone, per layer",
        yaxis=dict(autorange="reversed"),
        height=120 + 28 * len(names),
        autosize=True,
    )
    return fig
