"""Comparison helpers: the notebook budget switch and the tables."""

from __future__ import annotations

import pytest

from clviz.core import RunResult
from clviz.experiments.compare import compare, comparison_configs, notebook_budget
from clviz.experiments.tables import ablation_table, comparison_table, metric_rows


def test_fast_mode_is_switched_by_the_environment(monkeypatch):
    monkeypatch.setenv("CLVIZ_FAST", "1")
    assert notebook_budget() == notebook_budget("default", 500)
    assert notebook_budget().stream == "smoke" and notebook_budget().fast
    assert "fast mode" in notebook_budget().describe()
    monkeypatch.setenv("CLVIZ_FAST", "0")
    full = notebook_budget()
    assert full.stream == "default" and not full.fast and full.steps == 100


def test_class_mode_runs_the_default_stream_with_fewer_steps(monkeypatch):
    monkeypatch.delenv("CLVIZ_FAST", raising=False)
    monkeypatch.setenv("CLVIZ_MODE", "class")
    budget = notebook_budget()
    assert (budget.stream, budget.steps, budget.mode) == ("default", 40, "class")
    assert not budget.fast and "class mode" in budget.describe()
    assert budget.choose(fast=1, classroom=2, full=3) == 2
    assert budget.workers >= 1
    monkeypatch.setenv("CLVIZ_FAST", "1")  # what the test suite sets wins
    assert notebook_budget().mode == "fast" and notebook_budget().workers == 1
    monkeypatch.setenv("CLVIZ_MODE", "lesson")
    with pytest.raises(ValueError, match="unknown CLVIZ_MODE='lesson'; valid modes: fast, class"):
        notebook_budget()


def test_the_classroom_gpu_profile_draws_64_px_for_the_64_px_tiny_clip(monkeypatch, tmp_path):
    monkeypatch.setenv("CLVIZ_FAST", "0")
    monkeypatch.setenv("CLVIZ_PROFILE", "classroom-gpu")
    budget = notebook_budget()
    assert budget.steps == 300 and "classroom-gpu" in budget.describe()
    (result,) = compare(["finetune"], stream="smoke", steps=2, root=tmp_path).values()
    assert result.config["backbone"] == "clviz-tiny-64" and result.config["image_size"] == 64
    assert result.config["train"]["batch_size"] == 128
    monkeypatch.setenv("CLVIZ_PROFILE", "gpu")
    with pytest.raises(ValueError, match="unknown profile 'gpu'; valid profiles: embedded"):
        notebook_budget()


def runs() -> dict[str, RunResult]:
    matrix = [[80.0, 30.0, 20.0], [60.0, 90.0, 25.0], [50.0, 70.0, 85.0]]
    return {
        name: RunResult(name, ["a", "b", "c"], matrix, trainable_params=1_500_000, seconds=12.0)
        for name in ("finetune", "zscl")
    }


def test_table_lists_every_method():
    # BWT = mean(50 - 80, 70 - 90) = -25; forgetting = mean(80 - 50, 90 - 70) = 25.
    table = comparison_table(runs())
    assert "| finetune | 26.2 | 56.7 | 68.3 | -25.0 | 25.0 | 1.50M | 12 |" in table
    assert table.count("\n") == 3
    assert metric_rows(runs())[1].label == "zscl"


def test_tables_render_as_tables_in_a_notebook_and_as_text_in_a_terminal():
    """The last value of a cell is drawn from its richest representation: Markdown, not the
    raw pipes of its text."""
    from IPython.core.formatters import DisplayFormatter

    table = comparison_table(runs())
    shown, _ = DisplayFormatter().format(table)
    assert shown["text/markdown"] == str(table)
    assert shown["text/plain"] == str(table)  # no quotes, no escaped newlines
    assert f"{table}" == str(table)


def test_ablation_table_shows_the_change_against_the_first_variant():
    table = ablation_table(runs())
    assert "| zscl | 26.2 | +0.0 |" in table and table.startswith("| variant |")


def test_full_mode_notebooks_reuse_the_main_jobs_runs(monkeypatch):
    """A notebook's full budget names the same run folders as the main job, so a notebook
    opened after `make run` reads its runs instead of training them again."""
    monkeypatch.delenv("CLVIZ_FAST", raising=False)
    budget = notebook_budget()
    names = ["finetune", "moe-adapters"]
    notebook = comparison_configs(names, budget.stream, steps=budget.steps)
    main_job = comparison_configs(names, "default")  # what clviz main builds (steps=None)
    assert [c.digest() for c in notebook] == [c.digest() for c in main_job]
