"""MoE figures from recorded selections, frozen sets and DDAS reports."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from clviz.figures.moe import (
    ddas_confusion,
    ddas_error_histograms,
    expert_selection_heatmaps,
    frozen_timeline,
    routing_entropy,
    selection_frequency,
    tower_layers,
)

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


def test_frozen_timeline_records_when_each_expert_froze():
    fig = frozen_timeline(FROZEN, ["a", "b"], tower="text")
    np.testing.assert_array_equal(fig.data[0].z, [[1, 1, 2, 2]] * 2)


def test_routing_entropy_in_bits():
    fig = routing_entropy(SELECTIONS, ["a", "b"])
    assert len(fig.data) == 4
    first, second = fig.data[0].y
    assert first == pytest.approx(1.0)  # two experts, equally used
    p = np.array([4, 6, 6]) / 16
    assert second == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert selection_frequency(SELECTIONS[0], LAYERS[:1]).sum() == pytest.approx(1)


def test_ddas_figures():
    hist = ddas_error_histograms({"a": np.array([0.1, 0.2]), "b": np.array([0.5])}, 0.3)
    assert len(hist.data) == 2 and hist.layout.shapes[0].x0 == 0.3
    conf = ddas_confusion(np.array([[8, 0, 2], [0, 0, 10]]), ["a", "c"], ["a", "b"])
    assert list(conf.data[0].x) == ["a", "b", "backbone (OOD)"]
    np.testing.assert_allclose(conf.data[0].z, [[80, 0, 20], [0, 0, 100]])


def test_frozen_reuse_share():
    from clviz.figures.moe import frozen_reuse

    assert frozen_reuse(SELECTIONS, FROZEN) == [pytest.approx(4 / 16)]  # expert 1 was frozen
