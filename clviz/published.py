"""Published MTIL numbers (order I, ViT-B/16), to set the embedded benchmark's numbers beside.

Transfer / Avg / Last in percent, as reported by ZSCL (Zheng et al., ICCV 2023, table 1),
MoE-Adapters (Yu et al., CVPR 2024, table 1) and MulKI (Zhang et al., arXiv 2411.06764; its Last
was not available to us). Keys are clviz method names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from clviz.core.result import RunResult
from clviz.experiments.tables import MarkdownTable, markdown_table

MTIL_ORDER_I: dict[str, tuple[float, float, float | None]] = {
    "zero-shot": (69.4, 65.3, 65.3),
    "finetune": (44.6, 55.9, 77.3),
    "lwf": (56.9, 64.7, 74.6),
    "wise-ft": (52.3, 60.7, 77.7),
    "zscl": (68.1, 75.4, 83.6),
    "moe-adapters": (68.9, 76.7, 85.0),
    "mulki": (70.1, 77.3, None),
}


def published_row(method: str) -> dict[str, float | None]:
    """{'transfer', 'avg', 'last'} published for ``method`` (all None when not published)."""
    t, a, last = MTIL_ORDER_I.get(method, (None, None, None))
    return {"transfer": t, "avg": a, "last": last}


def beside_published(results_by_method: Mapping[str, RunResult]) -> list[dict[str, Any]]:
    """Each method's embedded Transfer / Avg / Last next to the published MTIL order-I ones,
    and each Transfer relative to zero-shot's in both (where both are known): the shape of the
    comparison is what the embedded benchmark can reproduce, not the values."""
    zs = results_by_method.get("zero-shot")
    rows = []
    for name, r in results_by_method.items():
        m, p = r.metrics, published_row(name)
        row: dict[str, Any] = {
            "method": name,
            **{k: getattr(m, k) for k in ("transfer", "avg", "last")},
            **{f"published_{k}": v for k, v in p.items()},
            "transfer_vs_zero_shot": None,
            "published_transfer_vs_zero_shot": None,
        }
        if zs is not None:
            row["transfer_vs_zero_shot"] = m.transfer - zs.metrics.transfer
            if p["transfer"] is not None:
                row["published_transfer_vs_zero_shot"] = (
                    p["transfer"] - MTIL_ORDER_I["zero-shot"][0]
                )
        rows.append(row)
    return rows


def format_beside(rows: list[dict[str, Any]]) -> MarkdownTable:
    """:func:`beside_published` as a table ('–' where a number is not published)."""

    def number(key: str, sign: str = "") -> Callable[[dict[str, Any]], str]:
        return lambda row: "–" if row[key] is None else f"{row[key]:{sign}.1f}"

    columns = [
        ("method", lambda row: row["method"]),
        ("Transfer", number("transfer")),
        ("Avg", number("avg")),
        ("Last", number("last")),
        ("MTIL-I Transfer", number("published_transfer")),
        ("MTIL-I Avg", number("published_avg")),
        ("MTIL-I Last", number("published_last")),
        ("Transfer − zero-shot", number("transfer_vs_zero_shot", "+")),
        ("MTIL-I Transfer − zero-shot", number("published_transfer_vs_zero_shot", "+")),
    ]
    return markdown_table(rows, columns)
