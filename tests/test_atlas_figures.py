"""ATLAS figures and protocol tables from small hand-made records (no training)."""

from __future__ import annotations

import plotly.graph_objects as go

from clviz.atlas.protocol import ABLATIONS, ablation_rows, forgetting, forgetting_rows
from clviz.figures import atlas as atlas_figures

SITES = {
    "visual.transformer.resblocks.0.attn": ["image", 0, "attn"],
    "transformer.resblocks.0.mlp": ["text", 0, "mlp"],
}
RECORD = {
    "query_sets": ["a", "b"],
    "adapter_owner": ["a", "b"],
    "stages": {"a": [2], "b": [1, 2]},
    "sites": SITES,
    "alphas": {
        "a": {"visual.transformer.resblocks.0.attn": [0.4], "transformer.resblocks.0.mlp": [0.6]},
        "b": {
            "visual.transformer.resblocks.0.attn": None,
            "transformer.resblocks.0.mlp": [0.2, 0.8],
        },
    },
    "experience_share": {"a": 0.0, "b": 0.2},
}


def protocol_result(ft_drop: float) -> dict:
    d = {s: [50.0, 60.0] for s in ABLATIONS}
    d.update(both=[55.0, 65.0], fresh=[40.0, 50.0], tasks=["x", "y"])
    return {
        "upstream": {
            "tasks": ["p", "q"],
            "atlas": [[70.0, 10.0], [70.0, 80.0]],
            "finetune": [[70.0, 10.0], [70.0 - ft_drop, 80.0]],
        },
        "downstream": d,
    }


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
    results = {"multi-first": protocol_result(30.0), "uni-first": protocol_result(10.0)}
    assert forgetting([[70.0, 10.0], [40.0, 80.0]]) == [30.0, 0.0]
    rows = forgetting_rows(results)
    ft = [r for r in rows if r["method"] == "finetune"]
    assert [r["forgetting"] for r in ft] == [15.0, 5.0]
    ab = {(r["order"], r["stages"]): r for r in ablation_rows(results)}
    assert ab[("multi-first", "both")]["transfer"] == 15.0
    assert ab[("multi-first", "fresh")]["transfer"] == 0.0
    assert isinstance(atlas_figures.protocol_bars(results), go.Figure)
    assert isinstance(atlas_figures.downstream_bars(results), go.Figure)
