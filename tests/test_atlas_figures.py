"""ATLAS figures and protocol tables from small hand-made records (no training)."""

from __future__ import annotations

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


def protocol_result(order: str, ft_drop: float, both=(55.0, 65.0)) -> ProtocolResult:
    """Downstream: stage1 and stage2 alone 55 on average, ``both`` 60 by default, a fresh
    adapter 45 (transfer 10, 10, 15); upstream: fine-tuning loses ``ft_drop`` on task p."""
    accuracy = {s: [50.0, 60.0] for s in LEARNERS}
    accuracy.update(both=list(both), fresh=[40.0, 50.0])
    upstream = {
        "atlas": RunResult("atlas", ["p", "q"], [[70.0, 10.0], [70.0, 80.0]]),
        "finetune": RunResult("finetune", ["p", "q"], [[70.0, 10.0], [70.0 - ft_drop, 80.0]]),
    }
    downstream = DownstreamResult(["x", "y"], ["image", "text"], accuracy, {})
    return ProtocolResult({"order": order}, upstream, downstream, ["image", "text"])


def test_alpha_figures_show_tasks_by_adapters_with_a_site_dropdown():
    """Rows are tasks, columns adapters (named by the task that added them); the mean over
    the sites that have alphas, then each site alone, one shown at a time."""
    fig = atlas_figures.alpha_heatmap(RECORD)
    assert len(fig.data) == 1 + len(SITES)  # the mean, then one trace per site
    mean = fig.data[0].z
    assert mean[0][0] == 0.5 and mean[0][1] is None  # task a never uses adapter 1
    assert list(fig.data[1].z[1]) == [None, None]  # a text-only task leaves the image site empty
    assert [list(row) for row in mean] == [[0.5, None], [0.2, 0.8]]  # b: the text site only
    assert [list(row) for row in fig.data[1].z] == [[0.4, None], [None, None]]
    assert [list(row) for row in fig.data[2].z] == [[0.6, None], [0.2, 0.8]]
    assert list(fig.data[0].x) == ["#0 (a)", "#1 (b)"] and list(fig.data[0].y) == ["a", "b"]
    assert [t.name for t in fig.data[1:]] == [
        "image tower · layer 0 · attn output",
        "text tower · layer 0 · mlp output",
    ]
    assert [t.visible for t in fig.data] == [True, False, False]
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.args[0]["visible"] for b in buttons] == [
        [True, False, False], [False, True, False], [False, False, True]
    ]  # fmt: skip
    bars = atlas_figures.experience_share_bars(RECORD)
    assert list(bars.data[0].y) == [0.0, 20.0] and list(bars.data[1].y) == [100.0, 80.0]


def test_alpha_site_grid_shows_one_adapters_alpha_per_site():
    """By default each task's last adapter (a: its own #0, b: its own #1); or one adapter."""
    image, text = atlas_figures.alpha_site_grid(RECORD).data
    assert list(image.x) == ["L0 attn"] and list(text.x) == ["L0 mlp"]
    assert [list(r) for r in image.z] == [[0.4], [None]]  # b never reached the image site
    assert [list(r) for r in text.z] == [[0.6], [0.8]]
    first = atlas_figures.alpha_site_grid(RECORD, adapter=0).data
    assert [list(r) for r in first[1].z] == [[0.6], [0.2]]
    second = atlas_figures.alpha_site_grid(RECORD, adapter=1).data
    assert [list(r) for r in second[1].z] == [[None], [0.8]]  # task a has no adapter 1


def test_protocol_tables_and_bars():
    results = {o: protocol_result(o, d) for o, d in (("multi-first", 30.0), ("uni-first", 10.0))}
    assert results["multi-first"].forgetting("finetune") == [30.0, 0.0]
    ft = [r for r in forgetting_rows(results) if r.method == "finetune"]
    assert [r.forgetting for r in ft] == [15.0, 5.0]
    rows = {(r.order, r.learner): r for r in downstream_rows(results)}
    assert rows[("multi-first", "both")].transfer == 15.0
    assert rows[("multi-first", "fresh")].transfer == 0.0
    assert "| multi-first | both | 55.0 |" in downstream_table(results)


def test_protocol_bars_show_mean_forgetting_and_transfer_per_order():
    """Left: mean drop since learned, by hand (fine-tuning (30 + 0) / 2 and (10 + 0) / 2,
    ATLAS none); right: mean accuracy minus the fresh adapter's, per ablation and order."""
    results = {
        "multi-first": protocol_result("multi-first", 30.0),
        "uni-first": protocol_result("uni-first", 10.0, both=(45.0, 55.0)),
    }
    fig = atlas_figures.protocol_bars(results)
    bars = {t.name: (t.xaxis, list(t.x), list(t.y)) for t in fig.data}
    orders = ["multi-first", "uni-first"]
    assert bars == {
        "atlas": ("x", orders, [0.0, 0.0]),
        "finetune": ("x", orders, [15.0, 5.0]),
        "stage1 only": ("x2", orders, [10.0, 10.0]),
        "stage2 only": ("x2", orders, [10.0, 10.0]),
        "both stages": ("x2", orders, [15.0, 5.0]),
    }


def test_downstream_bars_give_each_order_a_panel_of_every_learner():
    results = {
        "multi-first": protocol_result("multi-first", 30.0),
        "uni-first": protocol_result("uni-first", 10.0, both=(45.0, 55.0)),
    }
    fig = atlas_figures.downstream_bars(results)
    assert [a.text for a in fig.layout.annotations] == ["multi-first", "uni-first"]
    assert [t.name for t in fig.data] == [*LEARNERS, *LEARNERS]
    assert [t.xaxis for t in fig.data] == ["x"] * 4 + ["x2"] * 4
    assert all(list(t.x) == ["x", "y"] for t in fig.data)  # the downstream tasks
    uni = [[50.0, 60.0], [50.0, 60.0], [45.0, 55.0], [40.0, 50.0]]  # stage1, 2, both, fresh
    assert [list(t.y) for t in fig.data[4:]] == uni
    assert list(fig.data[2].y) == [55.0, 65.0]  # multi-first, both stages
    assert [t.showlegend for t in fig.data] == [True] * 4 + [False] * 4
    assert fig.layout.yaxis.title.text == "low-shot accuracy (%)"


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
