"""Runs side by side as rows of numbers, and those rows as a Markdown table that a notebook
draws as a table and a terminal prints as text."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clviz.core.result import RunResult


@dataclass(frozen=True)
class MetricRow:
    """One run's headline numbers (percent), its size and its cost."""

    label: str
    transfer: float
    avg: float
    last: float
    bwt: float
    forgetting: float
    trainable_params: int
    seconds: float
    peak_memory_mb: float


def metric_rows(results: Mapping[str, RunResult]) -> list[MetricRow]:
    """One row per run (task-incremental), labelled by its key in ``results``."""
    rows = []
    for label, r in results.items():
        m = r.metrics
        rows.append(
            MetricRow(
                label,
                m.transfer,
                m.avg,
                m.last,
                m.bwt,
                m.forgetting,
                r.trainable_params,
                r.seconds,
                r.peak_memory_mb,
            )
        )
    return rows


Column = tuple[str, Callable[[Any], str]]  # a header, and how a row shows in that column

COMPARISON: tuple[Column, ...] = (
    ("method", lambda r: r.label),
    ("Transfer", lambda r: f"{r.transfer:.1f}"),
    ("Avg", lambda r: f"{r.avg:.1f}"),
    ("Last", lambda r: f"{r.last:.1f}"),
    ("BWT", lambda r: f"{r.bwt:+.1f}"),
    ("forgetting", lambda r: f"{r.forgetting:.1f}"),
    ("trainable params", lambda r: f"{r.trainable_params / 1e6:.2f}M"),
    ("seconds", lambda r: f"{r.seconds:.0f}"),
)


class MarkdownTable(str):
    """A Markdown table: printed, its text; the last value of a notebook cell, a rendered
    table (Jupyter asks for ``_repr_markdown_``)."""

    def _repr_markdown_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return str(self)


def markdown_table(rows: Sequence[Any], columns: Sequence[Column] = COMPARISON) -> MarkdownTable:
    """``rows`` as a Markdown table (readable as plain text too)."""
    lines = [
        "| " + " | ".join(head for head, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in rows]
    return MarkdownTable("\n".join(lines))


def comparison_table(results: Mapping[str, RunResult]) -> MarkdownTable:
    """Every method's Transfer, Avg, Last, BWT, forgetting, parameters and seconds."""
    return markdown_table(metric_rows(results))


def ablation_table(results: Mapping[str, RunResult]) -> MarkdownTable:
    """Variants of one method, each with its change in Transfer against the first."""
    rows = metric_rows(results)
    first = rows[0].transfer if rows else 0.0
    columns = (
        ("variant", lambda r: r.label),
        ("Transfer", lambda r: f"{r.transfer:.1f}"),
        ("Δ Transfer", lambda r: f"{r.transfer - first:+.1f}"),
        *(c for c in COMPARISON if c[0] in ("Avg", "Last", "BWT", "seconds")),
    )
    return markdown_table(rows, columns)
