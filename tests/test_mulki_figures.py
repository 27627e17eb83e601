"""MulKI figures return figures, from the record a run writes (built here without training)."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from clviz.figures import mulki as mf
from clviz.mulki.ablation import ablation_rows, format_ablation


def task_record(name, w):
    return {
        "task": name,
        "prototype_text_before": 0.4,
        "prototype_text_after": 0.6,
        "class_mean_text_before": 0.4,
        "class_mean_text_after": 0.5,
        "modality_gap_before": 0.9,
        "modality_gap_after": 0.8,
        "teacher_weights": {
            "count": 10,
            "mean": w,
            "quantiles": [w - 0.2, w - 0.1, w, w + 0.1, w + 0.2],
            "histogram": [0, 0, 1, 2, 4, 2, 1, 0, 0, 0],
        },
    }


@pytest.fixture
def results():
    return {
        "method": "mulki",
        "metrics": {"transfer": 47.0, "avg": 50.0, "last": 51.0, "bwt": -5.0},
        "seconds": 100.0,
        "record": {"weight_bins": 10, "tasks": [task_record("a", 0.5), task_record("b", 0.4)]},
    }


def test_stream_figures(results):
    fig = mf.teacher_weights(results)
    assert isinstance(fig, go.Figure)
    assert list(fig.data[0].x) == ["a", "b"] and fig.data[0].z.shape == (10, 2)
    fig = mf.alignment_and_gap(results)
    assert isinstance(fig, go.Figure) and len(fig.data) == 5


def test_non_mulki_results_are_refused():
    with pytest.raises(ValueError, match="pass the results of a 'mulki' run"):
        mf.teacher_weights({"record": {}})


def test_walk_figures():
    names = ["x", "y", "z"]
    rel = {"intra": [0.2, 0.5, 0.3], "inter": [0.1, 0.8, 0.1], "confidence": 0.8}
    state = {
        "similarity": [[1.0, 0.1, 0.0], [0.1, 1.0, 0.2], [0.0, 0.2, 1.0]],
        "relations": {"pretrained teacher": rel, "previous teacher": rel, "student": rel},
    }
    walk = {"task": "t", "classnames": names, "label": 1, "before": state, "after": state}
    assert isinstance(mf.prototype_similarity(walk), go.Figure)
    assert len(mf.relations(walk).data) == 6
    assert isinstance(mf.weight_histogram([0.2, 0.5, 0.7]), go.Figure)


def test_ablation_rows_table_and_figures(results):
    worse = {**results, "metrics": {**results["metrics"], "transfer": 45.5}}
    rows = ablation_rows({"all stages": results, "without 4": worse})
    assert rows[1]["delta_transfer"] == pytest.approx(-1.5)
    assert "| without 4 | 45.5 | -1.5 |" in format_ablation(rows)
    assert isinstance(mf.ablation_bars(rows), go.Figure)
    assert isinstance(mf.ablation_table(rows), go.Figure)
