"""Figures are plotly objects with the expected content, built without a browser."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from clviz.core import RunResult
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


RESULTS = RunResult("demo", ["a", "b", "c"], [[80, 30, 20], [60, 90, 25], [50, 70, 85]])


def test_accuracy_heatmaps_share_one_scale():
    from clviz.figures import accuracy_heatmap, accuracy_heatmaps

    one = accuracy_heatmap(RESULTS)
    assert one.data[0].z.tolist() == RESULTS.matrix
    assert list(one.data[0].y) == ["after a", "after b", "after c"]
    many = accuracy_heatmaps({"x": RESULTS, "y": RESULTS})
    assert len(many.data) == 2 and all((h.zmin, h.zmax) == (0, 100) for h in many.data)
    assert [h.showscale for h in many.data] == [False, True]


def test_task_curves_mark_where_each_task_is_learned():
    from clviz.figures import task_curve_comparison, task_curves

    fig = task_curves(RESULTS)
    lines = [t for t in fig.data if t.mode == "lines"]
    stars = [t for t in fig.data if t.mode == "markers"]
    assert [list(t.y) for t in lines] == [[80, 60, 50], [30, 90, 70], [20, 25, 85]]
    assert [(t.x[0], t.y[0]) for t in stars] == [(1, 80), (2, 90), (3, 85)]
    cmp = task_curve_comparison({"x": RESULTS, "y": RESULTS}, "b")
    assert list(cmp.data[0].y) == [30, 90, 70]


def test_metric_bars_group_by_metric():
    from clviz.figures import metric_bars

    fig = metric_bars({"x": RESULTS}, ("transfer", "last"))
    assert list(fig.data[0].x) == ["Transfer", "Last"]
    assert list(fig.data[0].y) == pytest.approx([26.25, 68.333], abs=1e-3)
