"""Take-away sentences written from a run's numbers, so that none contradicts the screen.

A notebook that ends with "fine-tuning forgets" is wrong whenever its budget is too small for
forgetting to show. These functions choose each sentence by the numbers it describes and quote
them, so the same cell is right in fast mode, class mode and full mode.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from clviz.core.result import RunResult

NOTICEABLE = 1.0  # points: below this a difference is called "about the same"


def _compare(a: float, b: float) -> str:
    if a > b + NOTICEABLE:
        return "more than"
    if a < b - NOTICEABLE:
        return "less than"
    return "about as much as"


def diagonal_mean(result: RunResult) -> float:
    """Mean accuracy on each task right after learning it (the matrix's diagonal)."""
    return float(np.mean(np.diag(np.asarray(result.matrix, dtype=float))))


def forgetting_takeaways(results: Mapping[str, RunResult]) -> list[str]:
    """Notebook 02's take-aways for a comparison holding ``zero-shot`` and ``finetune`` (and
    any of ``lwf``, ``wise-ft``, ``zscl``): each sentence chosen and quoted from the numbers."""
    zs, ft = results["zero-shot"].metrics, results["finetune"].metrics
    lines = []
    drop = zs.transfer - ft.transfer
    if drop >= NOTICEABLE:
        lines.append(
            f"Fine-tuning lost {drop:.1f} points of Transfer ({ft.transfer:.1f} against the "
            f"untouched model's {zs.transfer:.1f}): tasks not learned yet fell below their "
            "zero-shot accuracy."
        )
    else:
        lines.append(
            f"Fine-tuning kept its Transfer in this run ({ft.transfer:.1f} against "
            f"{zs.transfer:.1f}): the budget was too small to move the model much. A larger "
            "budget (class or full mode) shows the loss."
        )
    if ft.forgetting >= NOTICEABLE:
        lines.append(
            f"It forgot {ft.forgetting:.1f} points on average of what it had learned "
            f"(BWT {ft.bwt:+.1f})."
        )
    else:
        lines.append(f"It forgot little in this run ({ft.forgetting:.1f} points on average).")
    trained = [n for n in results if n != "zero-shot"]
    best_diag = max(trained, key=lambda n: diagonal_mean(results[n]))
    lines.append(
        f"Right after learning a task, {best_diag} is the most accurate "
        f"({diagonal_mean(results[best_diag]):.1f} on average over the diagonal)."
    )
    best = max(trained, key=lambda n: results[n].metrics.transfer)
    lines.append(
        f"{best} keeps the most Transfer of the trained methods "
        f"({results[best].metrics.transfer:.1f}; zero-shot {zs.transfer:.1f})."
    )
    if "wise-ft" in results:
        wf = results["wise-ft"].metrics
        lines.append(
            f"WiSE-FT forgot {_compare(wf.forgetting, ft.forgetting)} fine-tuning "
            f"({wf.forgetting:.1f} against {ft.forgetting:.1f}): it keeps 80 % of every update."
        )
    return lines


def versus(results: Mapping[str, RunResult], a: str, b: str, metric: str = "transfer") -> str:
    """One sentence comparing two methods on one metric of this run, e.g. "mulki's Transfer
    (47.5) is above zscl's (46.7)"; within 1 point they are "about level"."""
    x, y = (getattr(results[n].metrics, metric) for n in (a, b))
    label = {"transfer": "Transfer", "avg": "Avg", "last": "Last", "bwt": "BWT"}.get(metric, metric)
    if abs(x - y) < NOTICEABLE:
        return f"{a}'s {label} ({x:.1f}) is about level with {b}'s ({y:.1f})"
    return f"{a}'s {label} ({x:.1f}) is {'above' if x > y else 'below'} {b}'s ({y:.1f})"
