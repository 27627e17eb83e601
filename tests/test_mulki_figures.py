"""MulKI figures return figures, from the record a run writes (built here without training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clviz.core import RunResult
from clviz.core.result import TaskStats
from clviz.experiments.mulki_walkthrough import Moment, Relations, Walk
from clviz.experiments.tables import ablation_table
from clviz.figures import mulki as mf
from clviz.methods.mulki import MulKIRecord, MulKITaskRecord, TeacherWeightSummary


def task_record(name, w, shift=0.0, histogram=(0, 0, 1, 2, 4, 2, 1, 0, 0, 0)):
    """Teacher-weight quantiles w - 0.2 ... w + 0.2; the alignment and gap numbers (before:
    0.4, 0.45, 0.9; after: 0.6, 0.5, 0.8) plus ``shift``."""
    weights = TeacherWeightSummary(10, w, [w - 0.2, w - 0.1, w, w + 0.1, w + 0.2], list(histogram))
    numbers = [v + shift for v in (0.4, 0.45, 0.9, 0.6, 0.5, 0.8)]
    return MulKITaskRecord(name, 0, *numbers, weights)


def result(matrix=((60.0, 40.0), (50.0, 70.0))):
    tasks = [task_record("a", 0.5), task_record("b", 0.4, 0.05, [0] * 8 + [1, 3])]
    return RunResult("mulki", ["a", "b"], [list(r) for r in matrix], record=MulKIRecord(10, tasks))


def test_stream_figures():
    """Teacher weights: each task's histogram as shares, its quantile bands and median; the
    alignment and gap numbers of each task, start and end, in their panels."""
    fig = mf.teacher_weights(result())
    assert list(fig.data[0].x) == ["a", "b"] and fig.data[0].z.shape == (10, 2)
    np.testing.assert_allclose(fig.data[0].z[:, 0], [0, 0, 0.1, 0.2, 0.4, 0.2, 0.1, 0, 0, 0])
    np.testing.assert_allclose(fig.data[0].z[:, 1], [0] * 8 + [0.25, 0.75])
    assert fig.data[0].y[0] == "0.0-0.1" and fig.data[0].y[-1] == "0.9-1.0"
    wide, narrow, median = fig.data[1:]
    assert (wide.name, narrow.name, median.name) == ("10-90 %", "25-75 %", "median")
    assert list(wide.x) == ["a", "b", "b", "a"]  # along the top, back along the bottom
    assert list(wide.y) == pytest.approx([0.7, 0.6, 0.2, 0.3])
    assert list(narrow.y) == pytest.approx([0.6, 0.5, 0.3, 0.4])
    assert list(median.y) == pytest.approx([0.5, 0.4])
    fig = mf.alignment_and_gap(result())
    assert [(t.name, t.xaxis) for t in fig.data] == [
        ("prototype, start of task", "x"),
        ("prototype, end of task", "x"),
        ("image class mean, end of task", "x"),
        ("gap, start of task", "x2"),
        ("gap, end of task", "x2"),
    ]
    np.testing.assert_allclose(
        [t.y for t in fig.data], [[0.4, 0.45], [0.6, 0.65], [0.5, 0.55], [0.9, 0.95], [0.8, 0.85]]
    )


def test_non_mulki_results_are_refused():
    with pytest.raises(ValueError, match="pass the result of a 'mulki' run"):
        mf.teacher_weights(RunResult("finetune", ["a"], [[1.0]]))


def test_walk_figures():
    """The similarity panels hold the start and end matrices; each source's relations go to
    its own bars in the intra and inter panels; the histogram bins the weights over [0, 1]."""
    names = ["x", "y", "z"]
    rel = Relations([0.2, 0.5, 0.3], [0.1, 0.8, 0.1], 0.8)
    old = Relations([0.3, 0.3, 0.4], [0.6, 0.2, 0.2], 0.2)
    sources = {"pretrained teacher": rel, "previous teacher": old, "student": rel}
    before = Moment([[1.0, 0.1, 0.0], [0.1, 1.0, 0.2], [0.0, 0.2, 1.0]], sources)
    after = Moment([[0.9, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 0.7]], {"student": old})
    walk = Walk(
        "t", names, 1, torch.zeros(3, 8, 8), before, after, [0.5], task_record("t", 0.5),
        TaskStats(),
    )  # fmt: skip
    sim = mf.prototype_similarity(walk)
    assert [[list(r) for r in h.z] for h in sim.data] == [before.similarity, after.similarity]
    assert all(list(h.x) == list(h.y) == names for h in sim.data)
    bars = mf.relations(walk, "before")
    assert len(bars.data) == 6
    assert [(t.name, t.xaxis, list(t.y)) for t in bars.data] == [
        ("pretrained teacher", "x", rel.intra),
        ("previous teacher", "x", old.intra),
        ("student", "x", rel.intra),
        ("pretrained teacher", "x2", rel.inter),
        ("previous teacher", "x2", old.inter),
        ("student", "x2", rel.inter),
    ]
    assert "true class: y" in bars.layout.title.text and "before training" in bars.layout.title.text
    (student,) = mf.relations(walk).data[:1]  # after: the student alone
    assert list(student.y) == old.intra
    hist = mf.weight_histogram([0.2, 0.5, 0.7]).data[0]
    assert list(hist.x) == [0.2, 0.5, 0.7]
    assert (hist.xbins.start, hist.xbins.end, hist.xbins.size) == (0, 1, 0.05)


def test_ablation_table_and_bars():
    variants = {"all stages": result(), "without 4": result(((60.0, 38.5), (50.0, 70.0)))}
    assert "| without 4 | 38.5 | -1.5 |" in ablation_table(variants)
    bars = mf.ablation_bars(variants)
    assert [t.name for t in bars.data] == ["Transfer", "Avg", "Last"]
    assert list(bars.data[0].x) == ["all stages", "without 4"]
    # by hand: Transfer = A[0][1]; Avg = the mean of the four; Last = the mean of row 2
    np.testing.assert_allclose([t.y for t in bars.data], [[40, 38.5], [55, 218.5 / 4], [60, 60]])


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
