"""MoE figures from recorded selections, frozen sets and DDAS reports."""

from __future__ import annotations

import itertools

import numpy as np
import plotly.graph_objects as go
import pytest

from clviz.figures import moe as moe_figures
from clviz.figures.moe import (
    ddas_confusion,
    ddas_error_histograms,
    ddas_mechanisms,
    ddas_routes,
    expert_selection_heatmaps,
    frozen_timeline,
    routing_entropy,
    selection_frequency,
    tower_layers,
)
from clviz.methods.moe import DDASReport

LAYERS = [
    "visual.transformer.resblocks.0",
    "visual.transformer.resblocks.1",
    "transformer.resblocks.0",
    "transformer.resblocks.1",
]
SELECTIONS = [
    {n: [8, 8, 0, 0] for n in LAYERS},
    {n: [0, 4, 6, 6] for n in LAYERS},
]
FROZEN = [{n: [0, 1] for n in LAYERS}, {n: [0, 1, 2, 3] for n in LAYERS}]
#: Different counts in every layer: (image 0, image 1, text 0, text 1) per task, with entropies
#: (bits) 1, 2, 0, H(4, 6, 6) for task a and 2, 1, 0, 1 for task b.
MIXED = [
    dict(zip(LAYERS, ([8, 8, 0, 0], [1, 1, 1, 1], [16, 0, 0, 0], [0, 4, 6, 6]), strict=True)),
    dict(zip(LAYERS, ([1, 1, 1, 1], [8, 8, 0, 0], [0, 0, 0, 5], [2, 2, 0, 0]), strict=True)),
]
H466 = float(-sum(p * np.log2(p) for p in np.array([4, 6, 6]) / 16))


def test_tower_layers_split_and_order():
    assert tower_layers(LAYERS, "image") == LAYERS[:2]
    assert tower_layers(LAYERS, "text") == LAYERS[2:]
    with pytest.raises(ValueError, match="tower must be"):
        tower_layers(LAYERS, "audio")


def test_selection_heatmaps_mark_frozen_experts():
    fig = expert_selection_heatmaps(SELECTIONS, FROZEN, ["a", "b"], tower="image")
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    marks = [t for t in fig.data if isinstance(t, go.Scatter)]
    assert len(heatmaps) == 2
    np.testing.assert_allclose(heatmaps[0].z, [[0.5, 0.5, 0, 0]] * 2)
    assert len(marks) == 1 and sorted(marks[0].x) == [0, 0, 1, 1]  # frozen after task a
    np.testing.assert_allclose(heatmaps[1].z, [[0, 0.25, 0.375, 0.375]] * 2)
    assert list(heatmaps[0].y) == ["block 0", "block 1"] and list(heatmaps[0].x) == [0, 1, 2, 3]
    (mark,) = marks  # on task b's panel, each cross over its expert's share of the choices
    assert list(zip(mark.x, mark.y, mark.customdata, strict=True)) == [
        (0, "block 0", 0.0), (1, "block 0", 0.25), (0, "block 1", 0.0), (1, "block 1", 0.25)
    ]  # fmt: skip
    assert mark.xaxis == "x2" and heatmaps[1].xaxis == "x2"
    assert all(h.zmax == 0.5 for h in heatmaps)  # the largest share of either panel


def test_selection_heatmaps_put_each_layers_counts_on_its_row():
    """Shares by layer and task, the rows in depth order, each tower on its own."""
    image = expert_selection_heatmaps(MIXED, FROZEN, ["a", "b"], tower="image").data
    np.testing.assert_allclose(image[0].z, [[0.5, 0.5, 0, 0], [0.25] * 4])
    np.testing.assert_allclose(image[1].z, [[0.25] * 4, [0.5, 0.5, 0, 0]])
    text = expert_selection_heatmaps(MIXED, FROZEN, ["a", "b"], tower="text").data
    np.testing.assert_allclose(text[0].z, [[1, 0, 0, 0], [0, 0.25, 0.375, 0.375]])
    np.testing.assert_allclose(text[1].z, [[0, 0, 0, 1], [0.5, 0.5, 0, 0]])


def test_frozen_timeline_records_when_each_expert_froze():
    fig = frozen_timeline(FROZEN, ["a", "b"], tower="text")
    np.testing.assert_array_equal(fig.data[0].z, [[1, 1, 2, 2]] * 2)
    assert [list(r) for r in fig.data[0].text] == [["a", "a", "b", "b"]] * 2
    later = [{n: [2] for n in LAYERS}, {n: [2] if "1" in n else [0, 2] for n in LAYERS}]
    heat = frozen_timeline(later, ["a", "b"], tower="image").data[0]
    np.testing.assert_array_equal(heat.z, [[2, np.nan, 1], [np.nan, np.nan, 1]])  # nan: never
    assert [list(r) for r in heat.text] == [["b", "", "a"], ["", "", "a"]]


def test_routing_entropy_in_bits():
    fig = routing_entropy(SELECTIONS, ["a", "b"])
    assert len(fig.data) == 4
    first, second = fig.data[0].y
    assert first == pytest.approx(1.0)  # two experts, equally used
    p = np.array([4, 6, 6]) / 16
    assert second == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert selection_frequency(SELECTIONS[0], LAYERS[:1]).sum() == pytest.approx(1)
    mixed = routing_entropy(MIXED, ["a", "b"])
    names = ["image block 0", "image block 1", "text block 0", "text block 1"]
    assert [t.name for t in mixed.data] == names
    assert [list(t.x) for t in mixed.data] == [["a", "b"]] * 4
    expected = [[1.0, 2.0], [2.0, 1.0], [0.0, 0.0], [H466, 1.0]]
    for trace, values in zip(mixed.data, expected, strict=True):
        assert list(trace.y) == pytest.approx(values), trace.name


def test_routing_entropy_shows_its_maximum_and_says_what_x_is():
    """Four experts: at most log2(4) = 2 bits, every expert chosen equally; nothing above it."""
    fig = routing_entropy(SELECTIONS, ["a", "b"])
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == pytest.approx(2.0) and line.line.dash == "dash"
    (label,) = fig.layout.annotations
    assert label.text.startswith("uniform (maximum)") and "log2(4)" in label.text
    assert all(max(t.y) <= 2.0 + 1e-9 for t in fig.data)
    assert fig.layout.yaxis.range[1] > 2.0  # the line and its label are inside the plot
    assert "task" in fig.layout.xaxis.title.text
    image, text = fig.data[0], fig.data[2]  # block 0 of each tower: one colour, two dashes
    assert image.line.color == text.line.color and image.line.dash != text.line.dash


def test_ddas_figures():
    hist = ddas_error_histograms({"a": np.array([0.1, 0.2]), "b": np.array([0.5])}, 0.3)
    assert len(hist.data) == 2 and hist.layout.shapes[0].x0 == 0.3
    assert [list(t.x) for t in hist.data] == [[0.1, 0.2], [0.5]]  # each task its own errors
    bins = hist.data[0].xbins  # 40 bins from the smallest error to the largest
    assert (bins.start, bins.end, bins.size) == pytest.approx((0.1, 0.5, 0.01))
    conf = ddas_confusion(np.array([[8, 0, 2], [0, 0, 10]]), ["a", "c"], ["a", "b"])
    assert list(conf.data[0].x) == ["a", "b", "backbone (OOD)"]
    assert list(conf.data[0].y) == ["a", "c"]  # rows: the true task
    np.testing.assert_allclose(conf.data[0].z, [[80, 0, 20], [0, 0, 100]])
    assert [list(r) for r in conf.data[0].text] == [["80", "0", "20"], ["0", "0", "100"]]


def test_frozen_reuse_share():
    from clviz.figures.moe import frozen_reuse

    assert frozen_reuse(SELECTIONS, FROZEN) == [pytest.approx(4 / 16)]  # expert 1 was frozen


def test_ddas_routes_add_up_by_hand():
    """Task a (learned): 6 own, 1 to b, 3 to the backbone (2 generic, 1 threshold) of 10."""
    report = DDASReport(
        {"a": [0.1] * 10, "c": [0.2] * 4},
        [[6, 1, 3], [0, 1, 3]],
        {"a": 60.0, "c": 75.0},
        ["a", "b"],
        0.5,
        by_generic={"a": 20.0, "c": 50.0},
        by_threshold={"a": 10.0, "c": 25.0},
    )
    routes = ddas_routes(report)
    assert routes["a"] == {
        "own router": 60.0,
        "another router": 10.0,
        "backbone: generic autoencoder won": 20.0,
        "backbone: error above threshold": 10.0,
    }
    assert routes["c"]["own router"] == 0.0 and routes["c"]["another router"] == 25.0
    assert all(sum(r.values()) == pytest.approx(100.0) for r in routes.values())
    fig = ddas_mechanisms({"per sample": report, "per batch": report})
    assert len(fig.data) == 8 and fig.layout.barmode == "stack"
    for trace in fig.data:  # each panel: one bar per task and destination, its share
        assert list(trace.y) == ["a", "c"] and trace.orientation == "h"
        assert list(trace.x) == [routes["a"][trace.name], routes["c"][trace.name]]
    assert [t.name for t in fig.data[:4]] == list(routes["a"])
    assert [t.xaxis for t in fig.data] == ["x"] * 4 + ["x2"] * 4
    assert [t.showlegend for t in fig.data] == [True] * 4 + [False] * 4


def test_selection_heatmaps_keep_colour_bar_legend_and_ticks_apart():
    experts = 16
    selections = [{n: list(range(experts)) for n in LAYERS} for _ in range(5)]
    frozen = [{n: [] for n in LAYERS}] + [{n: [0, 1] for n in LAYERS}] * 4
    fig = expert_selection_heatmaps(selections, frozen, list("abcde"))
    assert fig.layout.width is None and fig.layout.autosize is True
    axes = [fig.layout[f"xaxis{i if i > 1 else ''}"] for i in range(1, 6)]
    assert all(ax.title.text == "expert" for ax in axes)
    assert all(len(ax.tickvals) <= 4 and ax.tickvals[0] == 0 for ax in axes)
    gaps = [b.domain[0] - a.domain[1] for a, b in itertools.pairwise(axes)]
    assert min(gaps) >= 0.03  # room between neighbouring panels' tick labels
    # the colour bar right of the last panel, the legend below the panels: no overlap
    bars = [t for t in fig.data if isinstance(t, go.Heatmap) and t.showscale]
    assert len(bars) == 1 and bars[0].colorbar.x >= 1 and bars[0].colorbar.xanchor == "left"
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0
    assert fig.layout.margin.b >= 100
    # the frozen marks get one legend entry, even though task b's frozen set was empty
    marks = [t for t in fig.data if isinstance(t, go.Scatter)]
    assert [t.showlegend for t in marks] == [True, False, False]


def test_frozen_timeline_has_one_colour_per_task_and_integer_ticks():
    fig = frozen_timeline(FROZEN, ["a", "b"], tower="image")
    heat = fig.data[0]
    assert list(heat.colorbar.tickvals) == [1, 2]
    assert all(isinstance(v, int) for v in heat.colorbar.tickvals)
    assert list(heat.colorbar.ticktext) == ["1: a", "2: b"]
    assert (heat.zmin, heat.zmax) == (0.5, 2.5)  # each whole task number mid-band
    colours = [c for _, c in heat.colorscale]
    assert len(set(colours)) == 2 and colours[0] == colours[1] and colours[2] == colours[3]
    assert fig.layout.xaxis.title.text == "expert" and fig.layout.width is None


def test_ddas_error_histograms_are_small_multiples():
    """One row per task, in its own colour, the same bins, the threshold drawn in every row."""
    errors = {name: np.linspace(0.01 * k, 0.05 + 0.01 * k, 30) for k, name in enumerate("abcd")}
    fig = ddas_error_histograms(errors, 0.045)
    assert [t.name for t in fig.data] == list("abcd")
    assert [t.yaxis for t in fig.data] == ["y", "y2", "y3", "y4"]  # a row each, not overlaid
    assert len({t.marker.color for t in fig.data}) == 4
    assert len({(t.xbins.start, t.xbins.size) for t in fig.data}) == 1  # comparable rows
    lines = [s for s in fig.layout.shapes if s.x0 == s.x1 == 0.045]
    assert sorted(s.yref for s in lines) == ["y domain", "y2 domain", "y3 domain", "y4 domain"]
    names = [a.text for a in fig.layout.annotations if a.xanchor == "left"]
    assert [n.rsplit(" ", 1)[1] for n in names] == list("abcd")  # each row says its task
    assert fig.layout.xaxis4.title.text == "reconstruction error (MSE)"
    assert fig.layout.barmode != "overlay"


def test_frozen_crosses_stay_small_and_thin_so_the_colours_show():
    experts = 16
    selections = [{n: list(range(experts)) for n in LAYERS} for _ in range(8)]
    frozen = [{n: list(range(2 * t + 2)) for n in LAYERS} for t in range(8)]
    fig = expert_selection_heatmaps(selections, frozen, list("abcdefgh"))
    marks = [t for t in fig.data if isinstance(t, go.Scatter)]
    cell = moe_figures.PANELS_PX / 8 / experts  # an expert's width at the nominal size
    for m in marks:
        assert m.marker.symbol == "x-thin"  # lines only: no filled blob over the cell
        assert m.marker.size <= max(4, 0.6 * cell) and m.marker.line.width <= 1.5
        assert m.marker.color == m.marker.line.color == moe_figures.FROZEN_COLOUR
    assert moe_figures.FROZEN_COLOUR.lower() not in ("white", "#ffffff")
    assert moe_figures.frozen_marker(4, 2)["size"] == 9  # wide cells: a bigger cross
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len({h.zmax for h in heatmaps}) == 1  # one colour bar, so one scale
    assert "%" in marks[0].hovertemplate  # hovering a cross still gives the cell's share


def report(threshold, by_threshold, errors=(0.01, 0.02, 0.05)):
    """A two-task DDASReport with every image on its own router but ``by_threshold`` %."""
    share = {"a": by_threshold, "b": by_threshold}
    lost = round(by_threshold / 10)
    return DDASReport(
        {"a": list(errors), "b": list(errors)},
        [[10 - lost, 0, lost], [0, 10 - lost, lost]],
        {"a": 100.0 - by_threshold, "b": 100.0 - by_threshold},
        ["a", "b"],
        threshold,
        by_generic={"a": 0.0, "b": 0.0},
        by_threshold=share,
    )


def plain(title: str) -> str:
    """A title's words, without its line breaks and superscript tags."""
    return title.replace("<br>", " ").replace("<sup>", "").replace("</sup>", "")


def test_ddas_mechanisms_explain_a_panel_that_repeats_another_from_the_numbers():
    modes = {
        "per sample": report(0.04, 10.0),
        "per batch": report(0.04, 0.0),
        "per batch, threshold 0.0655": report(0.0655, 0.0),
    }
    fig = ddas_mechanisms(modes)
    title = plain(fig.layout.title.text)
    assert "“per batch, threshold 0.0655” shows the same routes as “per batch”" in title
    assert "sent nothing to the backbone" in title and "0.0400" in title and "0.0655" in title
    # one image error in three of each task lies between the two thresholds
    assert "33.3% of single test images' best errors lie between" in title
    assert "“per batch” shows" not in title  # per batch differs from per sample
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "per sample<br><sup>threshold 0.0400</sup>"
    assert fig.layout.margin.t >= 90 + 20 * 3  # the three lines of explanation fit


def test_ddas_mechanisms_name_thresholds_no_decision_lies_between():
    same = {"low": report(0.04, 10.0, (0.01, 0.03)), "high": report(0.06, 10.0, (0.01, 0.03))}
    text = plain(ddas_mechanisms(same).layout.title.text)
    assert "no winning task error lies between their thresholds 0.0400 and 0.0600" in text
    assert "single test images" not in text  # no image error lies between either
    assert (
        "same threshold 0.0400"
        in ddas_mechanisms({"x": report(0.04, 10.0), "y": report(0.04, 10.0)}).layout.title.text
    )
    apart = ddas_mechanisms({"x": report(0.04, 10.0), "y": report(0.06, 0.0)})
    assert apart.layout.title.text == "Where DDAS sent each task's test images"
