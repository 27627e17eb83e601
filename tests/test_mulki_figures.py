"""MulKI figures return figures, from the record a run writes (built here without training)."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

from clviz.core import RunResult
from clviz.core.result import TaskStats
from clviz.experiments.mulki_walkthrough import Moment, Relations, Walk
from clviz.experiments.tables import ablation_table
from clviz.figures import mulki as mf
from clviz.methods.mulki import MulKIRecord, MulKITaskRecord, TeacherWeightSummary


def task_record(name, w):
    weights = TeacherWeightSummary(
        10, w, [w - 0.2, w - 0.1, w, w + 0.1, w + 0.2], [0, 0, 1, 2, 4, 2, 1, 0, 0, 0]
    )
    return MulKITaskRecord(name, 0, 0.4, 0.4, 0.9, 0.6, 0.5, 0.8, weights)


def result(matrix=((60.0, 40.0), (50.0, 70.0))):
    record = MulKIRecord(10, [task_record("a", 0.5), task_record("b", 0.4)])
    return RunResult("mulki", ["a", "b"], [list(r) for r in matrix], record=record)


def test_stream_figures():
    fig = mf.teacher_weights(result())
    assert isinstance(fig, go.Figure)
    assert list(fig.data[0].x) == ["a", "b"] and fig.data[0].z.shape == (10, 2)
    fig = mf.alignment_and_gap(result())
    assert isinstance(fig, go.Figure) and len(fig.data) == 5


def test_non_mulki_results_are_refused():
    with pytest.raises(ValueError, match="pass the result of a 'mulki' run"):
        mf.teacher_weights(RunResult("finetune", ["a"], [[1.0]]))


def test_walk_figures():
    names = ["x", "y", "z"]
    rel = Relations([0.2, 0.5, 0.3], [0.1, 0.8, 0.1], 0.8)
    moment = Moment(
        [[1.0, 0.1, 0.0], [0.1, 1.0, 0.2], [0.0, 0.2, 1.0]],
        {"pretrained teacher": rel, "previous teacher": rel, "student": rel},
    )
    walk = Walk(
        "t", names, 1, torch.zeros(3, 8, 8), moment, moment, [0.5], task_record("t", 0.5),
        TaskStats(),
    )  # fmt: skip
    assert isinstance(mf.prototype_similarity(walk), go.Figure)
    assert len(mf.relations(walk).data) == 6
    assert isinstance(mf.weight_histogram([0.2, 0.5, 0.7]), go.Figure)


def test_ablation_table_and_bars():
    variants = {"all stages": result(), "without 4": result(((60.0, 38.5), (50.0, 70.0)))}
    assert "| without 4 | 38.5 | -1.5 |" in ablation_table(variants)
    bars = mf.ablation_bars(variants)
    assert [t.name for t in bars.data] == ["Transfer", "Avg", "Last"]
    assert list(bars.data[0].x) == ["all stages", "without 4"]


def test_figures_fill_the_container():
    """No fixed widths: a 1000-pixel figure is cut off in a narrow notebook column."""
    rel = Relations([0.2, 0.5, 0.3], [0.1, 0.8, 0.1], 0.8)
    moment = Moment([[1.0, 0.0], [0.0, 1.0]], {"student": rel})
    walk = Walk(
        "t", ["x", "y"], 1, torch.zeros(2, 8, 8), moment, moment, [0.5], task_record("t", 0.5),
        TaskStats(),
    )  # fmt: skip
    figures = (
        mf.teacher_weights(result()),
        mf.alignment_and_gap(result()),
        mf.prototype_similarity(walk),
        mf.relations(walk),
        mf.weight_histogram([0.2, 0.5]),
        mf.ablation_bars({"all stages": result()}),
    )
    for fig in figures:
        assert fig.layout.width is None and fig.layout.autosize is True
