"""Comparison helpers: the notebook budget switch and the table."""

from __future__ import annotations

from clviz.compare import comparison_rows, format_table, notebook_budget


def test_fast_mode_is_switched_by_the_environment(monkeypatch):
    monkeypatch.setenv("CLVIZ_FAST", "1")
    assert notebook_budget() == notebook_budget("default", 500)
    assert notebook_budget().stream == "smoke" and notebook_budget().fast
    monkeypatch.setenv("CLVIZ_FAST", "0")
    full = notebook_budget()
    assert full.stream == "default" and not full.fast and full.steps == 100


def test_table_lists_every_method():
    results = {
        name: {
            "metrics": {"transfer": 1.0, "avg": 2.0, "last": 3.0, "bwt": -4.0, "forgetting": 5.0},
            "trainable_params": 1_500_000,
            "seconds": 12.0,
        }
        for name in ("finetune", "zscl")
    }
    table = format_table(comparison_rows(results))
    assert "| finetune | 1.0 | 2.0 | 3.0 | -4.0 | 5.0 | 1.50M | 12 |" in table
    assert table.count("\n") == 3
