"""Pictures of the embedded world: one row per task, one example per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from clviz.core.task import Task

_GAP = 2  # pixels between tiles


def _row_mosaic(task: Task, upscale: int) -> tuple[np.ndarray, list[float]]:
    """The first training image of each class side by side, and the tile centres (x pixels)."""
    tiles = []
    for c in range(task.num_classes):
        idx = int((task.train_labels == c).nonzero()[0, 0])
        img = task.train_images[idx].permute(1, 2, 0).numpy()
        tiles.append(img.repeat(upscale, axis=0).repeat(upscale, axis=1))
    h, w = tiles[0].shape[:2]
    row = np.full((h, task.num_classes * (w + _GAP), 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        row[:, i * (w + _GAP) : i * (w + _GAP) + w] = tile
    return row, [i * (w + _GAP) + w / 2 for i in range(task.num_classes)]


def task_gallery(tasks: Sequence[Task], upscale: int = 2) -> go.Figure:
    """Every task of a stream as a row of examples, each labelled with its class name."""
    fig = make_subplots(
        rows=len(tasks),
        cols=1,
        vertical_spacing=0.6 / len(tasks),
        subplot_titles=[f"{t.name}  ({t.source}: {t.description})" for t in tasks],
    )
    for r, task in enumerate(tasks, start=1):
        mosaic, centres = _row_mosaic(task, upscale)
        fig.add_trace(go.Image(z=mosaic, hovertemplate=f"{task.name}<extra></extra>"), row=r, col=1)
        fig.update_xaxes(
            tickvals=centres,
            ticktext=list(task.classnames),
            tickangle=-35,
            showgrid=False,
            row=r,
            col=1,
        )
        fig.update_yaxes(visible=False, row=r, col=1)
    fig.update_layout(
        height=185 * len(tasks) + 60,
        autosize=True,
        margin=dict(l=10, r=10, t=40, b=10),
        title="The task stream: one example of every class",
    )
    fig.update_annotations(font_size=12, xanchor="left", x=0)
    return fig
