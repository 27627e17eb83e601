"""Published MTIL numbers (order I, ViT-B/16), to set the embedded benchmark's numbers beside.

Transfer / Avg / Last in percent, as reported by ZSCL (Zheng et al., ICCV 2023, table 1),
MoE-Adapters (Yu et al., CVPR 2024, table 1) and MulKI (Zhang et al., arXiv 2411.06764; its Last
was not available to us). Keys are clviz method names.
"""

from __future__ import annotations

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
