"""One colour per method and one per task, the same in every figure.

Methods are coloured by name, never by position, so "finetune" is the same rose in the metric
bars, the drift curves and the seed bars, whichever methods a figure shows. The untouched
backbone (zero-shot) is a neutral grey; the others take Paul Tol's colour-blind-safe "muted"
scheme (plotly's ``qualitative.Safe``). Any other label (an ablation, a seed) takes its
method's colour, or, when that method is drawn beside it, a stable colour of its own.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from plotly.colors import qualitative

#: Every registered method's colour (``clviz.methods.list_methods()``; a test checks the cover).
METHOD_COLORS = {
    "zero-shot": "#888888",
    "finetune": "#CC6677",
    "lwf": "#DDCC77",
    "wise-ft": "#999933",
    "zscl": "#88CCEE",
    "replay": "#882255",
    "joint": "#661100",
    "mulki": "#AA4499",
    "moe-adapters-taskid": "#44AA99",
    "moe-adapters": "#117733",
    "atlas": "#332288",
}

#: Colours for labels that are no registered method: none of them is a method's colour.
FALLBACK_COLORS = tuple(c for c in qualitative.Dark24 if c not in METHOD_COLORS.values())

#: One colour per task of a stream, by its position (20 distinct colours).
TASK_COLORS = tuple(qualitative.Plotly + qualitative.D3)


def base_method(label: str) -> str | None:
    """The registered method a label names: itself, or the method it starts with followed by
    a space or a bracket ("mulki (no stage 2)", "finetune seed 1"); None for anything else."""
    if label in METHOD_COLORS:
        return label
    starts = [m for m in METHOD_COLORS if label.startswith((f"{m} ", f"{m}("))]
    return max(starts, key=len, default=None)


def fallback_color(label: str) -> str:
    """A colour derived from the label's text alone (the same in every session and figure)."""
    return FALLBACK_COLORS[zlib.crc32(label.encode()) % len(FALLBACK_COLORS)]


def method_color(label: str) -> str:
    """The colour of a method, or of a label naming one (see :func:`base_method`)."""
    base = base_method(label)
    return METHOD_COLORS[base] if base else fallback_color(label)


def method_colors(labels: Iterable[str]) -> dict[str, str]:
    """Colours for the labels one figure draws: each its :func:`method_color`, except that a
    variant whose method is drawn too gets its own stable colour, so the two stay apart."""
    labels = list(labels)
    drawn = set(labels)
    return {
        label: fallback_color(label)
        if base_method(label) not in (None, label) and base_method(label) in drawn
        else method_color(label)
        for label in labels
    }


def task_color(index: int) -> str:
    """The colour of the task at ``index`` of a stream (cycling after 20 tasks)."""
    return TASK_COLORS[index % len(TASK_COLORS)]


def task_colors(n: int) -> list[str]:
    """The colours of the first ``n`` tasks of a stream."""
    return [task_color(i) for i in range(n)]
