"""MulKI's stage-by-stage ablation: the full method, and each stage switched off in turn."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from clviz.config import RunConfig
from clviz.engine import default_out_dir, results_root, run
from clviz.methods import TrainConfig

# variant label -> options; "all stages" is the default MulKI, the others switch one stage off
ABLATIONS: dict[str, dict[str, Any]] = {
    "all stages": {},
    "without 1 · eliciting": {"elicit": False},
    "without 2 · adding": {"add": False},
    "without 3 · distinguishing": {"distinguish": False},
    "without 4 · connecting": {"connect": False},
}


def _slug(label: str) -> str:
    return re.sub(r"-+", "-", "".join(c if c.isalnum() else "-" for c in label)).strip("-")


def ablation_dir(
    label: str, config: RunConfig, root: str | Path | None = None, steps: int | None = None
) -> Path:
    """Where a variant's run lives: the default MulKI shares the ordinary run folder (so the
    main job, the notebooks and this ablation reuse one run); the others get their own."""
    base = default_out_dir(config, root)
    if ABLATIONS.get(label) == {}:
        folder = base
    else:
        folder = Path(root or results_root()) / "mulki-ablation" / f"{_slug(label)}_{base.name}"
    if steps is not None and steps != TrainConfig().steps:
        folder = folder.with_name(f"{folder.name}_steps{steps}")
    return folder


def run_ablation(
    stream: str = "default",
    seed: int = 0,
    steps: int | None = None,
    root: str | Path | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Results of each variant (label -> results dict), run now or reused from the cache."""
    out = {}
    for label, options in (variants or ABLATIONS).items():
        train = TrainConfig() if steps is None else TrainConfig(steps=steps)
        config = RunConfig("mulki", stream, seed, train=train, options=dict(options))
        out[label] = run(config, ablation_dir(label, config, root, steps), progress=progress)
    return out


def ablation_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant: Transfer, Avg, Last, BWT and seconds, with the change in Transfer
    against the first variant (the full method)."""
    rows, first = [], None
    for label, r in results.items():
        m = r["metrics"]
        first = m["transfer"] if first is None else first
        rows.append(
            {
                "variant": label,
                "transfer": m["transfer"],
                "avg": m["avg"],
                "last": m["last"],
                "bwt": m["bwt"],
                "delta_transfer": m["transfer"] - first,
                "seconds": r["seconds"],
            }
        )
    return rows


def format_ablation(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`ablation_rows`."""
    lines = [
        "| variant | Transfer | Δ Transfer | Avg | Last | BWT | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['transfer']:.1f} | {r['delta_transfer']:+.1f} | "
            f"{r['avg']:.1f} | {r['last']:.1f} | {r['bwt']:+.1f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)
