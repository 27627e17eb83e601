"""ATLAS figures and protocol tables from small hand-made records (no training)."""

from __future__ import annotations

import plotly.graph_objects as go

from clviz.core import RunResult
from clviz.experiments.atlas_protocol import (
    LEARNERS,
    DownstreamResult,
    ProtocolResult,
    downstream_rows,
    downstream_table,
    forgetting_rows,
)
from clviz.figures import atlas as atlas_figures
from clviz.methods.atlas import AlphaRecord

SITES = {
    "visual.transformer.resblocks.0.attn": ["image", 0, "attn"],
    "transformer.resblocks.0.mlp": ["text", 0, "mlp"],
}
RECORD = AlphaRecord(
    query_sets=["a", "b"],
    adapter_owner=["a", "b"],
    stages={"a": [2], "b": [1, 2]},
    sites=SITES,
    alphas={
        "a": {"visual.transformer.resblocks.0.attn": [0.4], "transformer.resblocks.0.mlp": [0.6]},
        "b": {
            "visual.transformer.resblocks.0.attn": None,
            "transformer.resblocks.0.mlp": [0.2, 0.8],
        },
    },
    experience_share={"a": 0.0, "b": 0.2},
)


def protocol_result(order: str, ft_drop: float) -> ProtocolResult:
    accuracy = {s: [50.0, 60.0] for s in LEARNERS}
    accuracy.update(both=[55.0, 65.0], fresh=[40.0, 50.0])
    upstream = {
        "atlas": RunResult("atlas", ["p", "q"], [[70.0, 10.0], [70.0, 80.0]]),
        "finetune": RunResult("finetune", ["p", "q"], [[70.0, 10.0], [70.0 - ft_drop, 80.0]]),
    }
    downstream = DownstreamResult(["x", "y"], ["image", "text"], accuracy, {})
    return ProtocolResult({"order": order}, upstream, downstream, ["image", "text"])


def test_alpha_figures_show_tasks_by_adapters_with_a_site_dropdown():
    fig = atlas_figures.alpha_heatmap(RECORD)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1 + len(SITES)  # the mean, then one trace per site
    mean = fig.data[0].z
    assert mean[0][0] == 0.5 and mean[0][1] is None  # task a never uses adapter 1
    assert list(fig.data[1].z[1]) == [None, None]  # a text-only task leaves the image site empty
    assert isinstance(atlas_figures.alpha_site_grid(RECORD), go.Figure)
    bars = atlas_figures.experience_share_bars(RECORD)
    assert list(bars.data[0].y) == [0.0, 20.0] and list(bars.data[1].y) == [100.0, 80.0]


def test_protocol_tables_and_bars():
    results = {o: protocol_result(o, d) for o, d in (("multi-first", 30.0), ("uni-first", 10.0))}
    assert results["multi-first"].forgetting("finetune") == [30.0, 0.0]
    ft = [r for r in forgetting_rows(results) if r.method == "finetune"]
    assert [r.forgetting for r in ft] == [15.0, 5.0]
    rows = {(r.order, r.learner): r for r in downstream_rows(results)}
    assert rows[("multi-first", "both")].transfer == 15.0
    assert rows[("multi-first", "fresh")].transfer == 0.0
    assert "| multi-first | both | 55.0 |" in downstream_table(results)
    assert isinstance(atlas_figures.protocol_bars(results), go.Figure)
    assert isinstance(atlas_figures.downstream_bars(results), go.Figure)


def test_alpha_figures_have_no_fixed_width():
    results = {"multi-first": protocol_result("multi-first", 10.0)}
    for fig in (
        atlas_figures.alpha_heatmap(RECORD),
        atlas_figures.alpha_site_grid(RECORD),
        atlas_figures.experience_share_bars(RECORD),
        atlas_figures.protocol_bars(results),
        atlas_figures.downstream_bars(results),
    ):
        assert fig.layout.width is None
        assert fig.layout.title.text  # every figure says what it shows


def test_protocol_bars_colour_atlas_and_finetune_as_every_figure_does():
    from clviz.figures.colors import method_color

    fig = atlas_figures.protocol_bars({"multi-first": protocol_result("multi-first", 10.0)})
    upstream = {t.name: t.marker.color for t in fig.data if t.xaxis == "x"}
    assert upstream == {"atlas": method_color("atlas"), "finetune": method_color("finetune")}
