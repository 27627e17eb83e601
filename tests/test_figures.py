"""Figures are plotly objects with the expected content, built without a browser."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from clviz.core import RunResult
from clviz.figures import layer_curve, task_gallery, zeroshot_bars
from clviz.world import get_stream


def test_task_gallery_shows_every_class_of_every_task():
    """One row per task, one tile per class: each tile is the class's first training image,
    upscaled 2x, and the tick under it names that class."""
    tasks = get_stream("extra", train_per_class=2)
    fig = task_gallery(tasks)
    images = [t for t in fig.data if isinstance(t, go.Image)]
    assert len(images) == len(tasks)
    labels = [fig.layout[f"xaxis{i if i > 1 else ''}"].ticktext for i in range(1, len(tasks) + 1)]
    assert [tuple(x) for x in labels] == [t.classnames for t in tasks]
    assert images[0].z.shape[1] > images[0].z.shape[0]  # a row of tiles
    for task, image in zip(tasks, images, strict=True):
        side = 2 * task.train_images.shape[-1]  # square images, upscaled 2x
        assert image.z.shape[:2] == (side, task.num_classes * (side + 2))  # 2 px between tiles
        for c in (0, task.num_classes - 1):
            first = task.train_images[int((task.train_labels == c).nonzero()[0, 0])]
            tile = np.asarray(image.z)[::2, c * (side + 2) : c * (side + 2) + side : 2]
            np.testing.assert_array_equal(tile, first.permute(1, 2, 0).numpy())


def test_zeroshot_bars_mark_chance():
    fig = zeroshot_bars({"a": 50.0, "b": 20.0}, {"a": 10.0, "b": 12.5})
    bars, chance, labels = fig.data
    assert list(bars.y) == [50.0, 20.0] and list(chance.y) == [10.0, 12.5]
    assert list(labels.text) == ["50", "20"] and labels.showlegend is False


def test_value_labels_step_over_a_tick_just_above_the_bar():
    from clviz.figures.forgetting import labels_above

    labels = labels_above(
        ["a", "b", "c", "d"], [50, 11, 14, 40], [10, 12.5, 95, None], list("wxyz")
    )
    # a: tick inside the bar; b: tick just above, the label goes over it; c: tick far above,
    # the label stays on its bar; d: no tick
    assert list(labels.y) == [51.0, 13.5, 15.0, 41.0]
    assert list(labels_above(["a"], [5.0], [], ["5"]).y) == [6.0]  # no zero-shot row at all


def test_layer_curve_has_one_line_per_series():
    """Each series is one line over the layers, with its own values, under the given titles."""
    fig = layer_curve({"x": [1, 2], "y": [3, 4]}, ["0", "1"], "t", "acc")
    assert [t.name for t in fig.data] == ["x", "y"]
    assert [list(t.y) for t in fig.data] == [[1, 2], [3, 4]]
    assert all(list(t.x) == ["0", "1"] for t in fig.data)
    assert fig.layout.title.text == "t" and fig.layout.yaxis.title.text == "acc"
    assert fig.layout.xaxis.title.text == "layer"


RESULTS = RunResult("demo", ["a", "b", "c"], [[80, 30, 20], [60, 90, 25], [50, 70, 85]])
#: By hand: Transfer (30 + (10 + 30) / 2) / 2 = 30, Avg 540 / 9 = 60, Last 80, BWT 0,
#: forgetting 0 (RESULTS: 26.25, 56.67, 68.33, -25, 25).
OTHER = RunResult("other", ["a", "b", "c"], [[70, 40, 10], [70, 80, 30], [70, 80, 90]])


def test_accuracy_heatmaps_share_one_scale():
    from clviz.figures import accuracy_heatmap, accuracy_heatmaps

    one = accuracy_heatmap(RESULTS)
    assert one.data[0].z.tolist() == RESULTS.matrix
    assert list(one.data[0].y) == ["after a", "after b", "after c"]
    assert list(one.data[0].x) == ["a", "b", "c"]
    assert list(one.data[0].text[1]) == ["60", "90", "25"]  # the printed values
    many = accuracy_heatmaps({"x": RESULTS, "y": OTHER})
    assert len(many.data) == 2 and all((h.zmin, h.zmax) == (0, 100) for h in many.data)
    assert [h.showscale for h in many.data] == [False, True]
    assert [h.z.tolist() for h in many.data] == [RESULTS.matrix, OTHER.matrix]  # in order
    assert [a.text for a in many.layout.annotations] == ["x", "y"]  # each panel's method


def test_task_curves_mark_where_each_task_is_learned():
    from clviz.figures import task_curve_comparison, task_curves

    fig = task_curves(RESULTS)
    lines = [t for t in fig.data if t.mode == "lines"]
    stars = [t for t in fig.data if t.mode == "markers"]
    assert [list(t.y) for t in lines] == [[80, 60, 50], [30, 90, 70], [20, 25, 85]]
    assert [(t.x[0], t.y[0]) for t in stars] == [(1, 80), (2, 90), (3, 85)]
    assert list(fig.layout.xaxis.ticktext) == ["1: a", "2: b", "3: c"]
    cmp = task_curve_comparison({"x": RESULTS, "y": OTHER}, "b")
    assert [(t.name, list(t.y)) for t in cmp.data] == [("x", [30, 90, 70]), ("y", [40, 80, 80])]
    assert all(list(t.x) == [1, 2, 3] for t in cmp.data)
    (learned,) = cmp.layout.shapes  # the dotted line where b is learned: x = 2
    assert learned.x0 == learned.x1 == 2 and list(cmp.layout.xaxis.ticktext) == ["a", "b", "c"]


def test_metric_bars_group_by_metric():
    """One trace per method in the order given, one bar per metric: the values worked out by
    hand from each matrix (see OTHER)."""
    from clviz.figures import metric_bars

    fig = metric_bars({"x": RESULTS}, ("transfer", "last"))
    assert list(fig.data[0].x) == ["Transfer", "Last"]
    assert list(fig.data[0].y) == pytest.approx([26.25, 68.333], abs=1e-3)
    every = ("transfer", "avg", "last", "bwt", "forgetting")
    both = metric_bars({"y": OTHER, "x": RESULTS}, every)
    assert [t.name for t in both.data] == ["y", "x"]
    assert list(both.data[0].x) == ["Transfer", "Avg", "Last", "BWT", "forgetting"]
    assert list(both.data[0].y) == pytest.approx([30.0, 60.0, 80.0, 0.0, 0.0])
    assert list(both.data[1].y) == pytest.approx([26.25, 510 / 9, 205 / 3, -25.0, 25.0])
    assert both.layout.yaxis.title.text == "percent"
    assert both.layout.yaxis.range[0] < -25.0  # the negative BWT bar is inside the plot


def test_seed_bars_show_the_mean_the_spread_and_every_seed():
    """Two seeds of one method (RESULTS and OTHER): bars at the mean, error bars of the sample
    standard deviation, a dot at each seed's value."""
    from clviz.experiments.seeds import spreads
    from clviz.figures import seed_bars

    fig = seed_bars(spreads({"x": [RESULTS, OTHER]}))
    bars, dots = fig.data
    assert list(bars.x) == ["Transfer", "Last"]
    assert list(bars.y) == pytest.approx([(26.25 + 30) / 2, (205 / 3 + 80) / 2])
    half_gaps = [(30 - 26.25) / 2, (80 - 205 / 3) / 2]
    assert list(bars.error_y.array) == pytest.approx([g * np.sqrt(2) for g in half_gaps])
    assert list(dots.x) == ["Transfer", "Transfer", "Last", "Last"]
    assert list(dots.y) == pytest.approx([26.25, 30.0, 205 / 3, 80.0])
    assert "2 seeds" in fig.layout.title.text


NINE = {f"method {i}": RESULTS for i in range(9)}


def test_no_figure_module_sets_a_fixed_width():
    """Layout widths (hundreds of pixels) cut wide figures off in a narrow notebook column."""
    import re
    from pathlib import Path

    import clviz.figures

    for source in Path(clviz.figures.__file__).parent.glob("*.py"):
        assert not re.search(r"\bwidth=(\d{3,}|max\()", source.read_text()), source.name


def test_accuracy_heatmaps_fill_the_container_in_a_three_by_three_grid():
    from clviz.figures import accuracy_heatmap, accuracy_heatmaps

    grid = accuracy_heatmaps(NINE)  # notebook 08: nine methods
    assert len(grid.data) == 9
    assert grid.layout.width is None and grid.layout.autosize is True
    assert grid.layout.xaxis4.domain == grid.layout.xaxis.domain  # 3 per row: 4 starts row 2
    assert grid.layout.xaxis9 is not None and "xaxis10" not in grid.layout
    one = accuracy_heatmap(RESULTS)
    assert one.layout.width is None and one.layout.autosize is True


def test_task_curve_stars_share_their_lines_colour_and_are_explained():
    from clviz.figures import task_curve_comparison, task_curves

    fig = task_curves(RESULTS)
    lines = [t for t in fig.data if t.mode == "lines"]
    stars = [t for t in fig.data if t.mode == "markers"]
    assert len(lines) == len(stars) == 3
    for line, star in zip(lines, stars, strict=True):
        assert star.marker.symbol == "star"
        assert line.line.color is not None and star.marker.color == line.line.color
        assert star.legendgroup == line.legendgroup  # hiding a task hides its star too
    assert len({line.line.color for line in lines}) == 3
    assert "★" in fig.layout.title.text and "learned" in fig.layout.title.text  # the key
    assert fig.layout.width is None
    assert task_curve_comparison({"x": RESULTS}, "b").layout.width is None


def test_metric_bars_title_says_which_metrics():
    from clviz.figures import metric_bars

    first = metric_bars({"x": RESULTS})
    second = metric_bars({"x": RESULTS}, metrics=("bwt", "forgetting"))  # notebook 08, twice
    assert first.layout.title.text != second.layout.title.text
    assert "Transfer" in first.layout.title.text and "BWT" in second.layout.title.text
    assert metric_bars({"x": RESULTS}, title="mine").layout.title.text == "mine"
    assert first.layout.width is None


def test_accuracy_row_title_fits_counts_from_one_and_ticks_are_black():
    from clviz.figures.forgetting import accuracy_row

    result = RunResult("demo", ["a", "b", "c"], RESULTS.matrix, zero_shot=[10.0, 20.0, 30.0])
    fig = accuracy_row(result, 1)
    title = fig.layout.title.text
    assert "after task 2 (b)" in title  # 1-based, like the explorer's slider
    assert all(len(line) <= 110 for line in title.replace("</sup>", "").split("<br>"))
    assert fig.layout.margin.t >= 90  # room for the two-line title
    assert fig.layout.width is None and fig.layout.autosize is True
    bars, ticks, labels = fig.data
    assert list(bars.y) == [60, 90, 25] and list(bars.x) == ["a", "b", "c"]  # row 2
    assert list(bars.customdata) == ["learned", "learned now", "not yet"]
    assert list(bars.marker.color) == ["#1f77b4", "#d62728", "#9aa5b1"]  # blue, red, grey
    assert list(ticks.y) == [10.0, 20.0, 30.0] and list(labels.text) == ["60", "90", "25"]
    assert ticks.name == "zero-shot" and ticks.marker.symbol.endswith("-open")
    # an open symbol is stroked in marker.color, so that is what must be black
    assert ticks.marker.color == "black" and "black ticks: zero-shot" in title


def test_explorer_slider_counts_tasks_from_one(monkeypatch):
    pytest.importorskip("ipywidgets")
    from clviz import widgets

    seen = []

    def fake_panels(results, dmap, method, index):
        seen.append(index)
        return {}

    monkeypatch.setattr(widgets, "panels", fake_panels)
    box = widgets.explorer({"demo": RESULTS}, dmap=None)
    _, slider, label = box.children[0].children
    assert (slider.min, slider.max, slider.value) == (1, 3, 3)
    assert seen == [2] and label.value == "c"  # slider 3 = after the third task = index 2
    slider.value = 1
    assert seen[-1] == 0 and label.value == "a"
    assert widgets.task_slider(5).min == 1


def test_small_figures_have_no_fixed_width():
    tasks = get_stream("extra", train_per_class=2)
    for fig in (
        task_gallery(tasks),
        zeroshot_bars({"a": 50.0}, {"a": 10.0}),
        layer_curve({"x": [1, 2]}, ["0", "1"], "t", "acc"),
    ):
        assert fig.layout.width is None


def all_methods() -> dict[str, RunResult]:
    """Every registered method, as notebook 08 and the report compare them (11 today)."""
    from clviz.methods import list_methods

    return {name: RESULTS for name in list_methods()}


def test_metric_bar_labels_take_a_mode_that_fits_their_bars():
    from clviz.figures import metric_bars
    from clviz.figures.forgetting import label_angle

    few = metric_bars({"x": RESULTS, "y": RESULTS})
    assert {t.textangle for t in few.data} == {0}
    assert list(few.data[0].text) == [f"{v:.1f}" for v in few.data[0].y]
    many = metric_bars(all_methods())  # 11 methods x 3 metrics: upright, one per bar column
    assert {t.textangle for t in many.data} == {-90} and all(len(t.text) == 3 for t in many.data)
    assert many.layout.yaxis.range[1] > max(max(t.y) for t in many.data)  # room for them
    crowd = metric_bars(all_methods(), ("transfer", "avg", "last", "forgetting"))
    assert all(t.text is None for t in crowd.data)  # 44 bars: too narrow for any label
    assert "hover" in crowd.layout.title.text
    assert all("%{y:.1f}" in t.hovertemplate for t in crowd.data)  # the value is still there
    assert label_angle(1, 2, ["-12.3"]) == 0 and label_angle(4, 40, ["1.0"]) is None


BOXES = """() => [...document.querySelectorAll('.plotly-graph-div')].map(g => [
  ...[...g.querySelectorAll('.bartext, .textpoint text, .annotation-text')]
    .map(t => [t.textContent, t.getBoundingClientRect(), 0]),
  ...[...g.querySelectorAll('.scatterlayer .point')]
    .map(t => ['tick', t.getBoundingClientRect(), 2])
].filter(([s, r]) => s.trim() && r.width > 0)
 .map(([s, r, pad]) => ({s, x0: r.left, x1: r.right, y0: r.top - pad, y1: r.bottom + pad})))"""
#: Each box: a label's text, or "tick" for a marker, padded by half its stroke (3 px).


def drawn_text(figures: list[go.Figure], chromium: str, width: int, tmp_path) -> list[list[dict]]:
    """The bounding boxes of every label Chromium drew, per figure, at ``width`` pixels."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    from clviz.browser import FLAGS

    page_html = "".join(
        f.to_html(full_html=False, include_plotlyjs=i == 0, default_width="100%")
        for i, f in enumerate(figures)
    )
    path = tmp_path / "figures.html"
    path.write_text(f"<html><body style='margin:0'>{page_html}</body></html>", encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS[1:])
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(path.as_uri())
        page.wait_for_function(
            f"document.querySelectorAll('.plotly-graph-div .main-svg').length >= {len(figures)}"
        )
        boxes = page.evaluate(BOXES)
        browser.close()
    return boxes


def overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    return [
        (a["s"], b["s"])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a["x0"] < b["x1"] - 0.5 and b["x0"] < a["x1"] - 0.5
        and a["y0"] < b["y1"] - 0.5 and b["y0"] < a["y1"] - 0.5
    ]  # fmt: skip


@pytest.mark.parametrize("width", [820, 1200])
def test_value_labels_never_overlap_in_a_browser(chromium, tmp_path, width):
    """Eleven methods' metric bars (notebook 08, the report) and an accuracy row whose zero-shot
    ticks sit just above two bars: every label Chromium draws stays clear of every other."""
    from clviz.figures import metric_bars
    from clviz.figures.forgetting import accuracy_row

    rng = np.random.default_rng(0)
    matrix = rng.uniform(20, 90, (3, 3)).round(1).tolist()
    results = {
        name: RunResult(name, ["a", "b", "c"], (np.asarray(matrix) + k).tolist())
        for k, name in enumerate(all_methods())
    }
    row = RunResult("demo", ["a", "b", "c"], RESULTS.matrix, zero_shot=[52.0, 30.0, 88.0])
    figures = [
        metric_bars(results),
        metric_bars(results, ("bwt", "forgetting")),
        accuracy_row(row, 2),
    ]
    drawn = drawn_text(figures, chromium, width, tmp_path)
    labels = [[b for b in boxes if b["s"] != "tick"] for boxes in drawn]
    assert [len(b) for b in labels] == [33, 22, 3]  # every bar labelled at these widths
    for boxes in drawn:
        assert overlapping(boxes) == []
