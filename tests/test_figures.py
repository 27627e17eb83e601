"""Figures are plotly objects with the expected content, built without a browser."""

from __future__ import annotations

import plotly.graph_objects as go

from clviz.figures import layer_curve, task_gallery, zeroshot_bars
from clviz.world import get_stream


def test_task_gallery_shows_every_class_of_every_task():
    tasks = get_stream("extra", train_per_class=2)
    fig = task_gallery(tasks)
    assert isinstance(fig, go.Figure)
    images = [t for t in fig.data if isinstance(t, go.Image)]
    assert len(images) == len(tasks)
    labels = [fig.layout[f"xaxis{i if i > 1 else ''}"].ticktext for i in range(1, len(tasks) + 1)]
    assert [tuple(x) for x in labels] == [t.classnames for t in tasks]
    assert images[0].z.shape[1] > images[0].z.shape[0]  # a row of tiles


def test_zeroshot_bars_mark_chance():
    fig = zeroshot_bars({"a": 50.0, "b": 20.0}, {"a": 10.0, "b": 12.5})
    bars, chance = fig.data
    assert list(bars.y) == [50.0, 20.0] and list(chance.y) == [10.0, 12.5]


def test_layer_curve_has_one_line_per_series():
    fig = layer_curve({"x": [1, 2], "y": [3, 4]}, ["0", "1"], "t", "acc")
    assert [t.name for t in fig.data] == ["x", "y"]
