"""The effects each notebook teaches, checked on the run in front of the student.

A take-away sentence (:mod:`clviz.teach.takeaways`) is always true because it is chosen by the
numbers. An *effect* is stronger: the notebook exists to show it (fine-tuning forgets, DDAS
rescues Transfer, ...), so class and full mode, whose budgets are sized for the effects, fail
the notebook when one does not show. Fast mode (the test suite's smoke budget) only reports:
its runs are too short to show most of them.

Every list starts with :func:`learned_effects`: "holds what it learned" is hollow when nothing
was learned, so each trained method must first beat zero-shot on the tasks it just learned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from clviz.core.result import RunResult
from clviz.teach.expect import TakeawayError
from clviz.teach.takeaways import NOTICEABLE, diagonal_mean


@dataclass(frozen=True)
class Effect:
    """One effect a notebook teaches: does it show in this run, and the numbers that say so."""

    claim: str
    holds: bool
    numbers: str


def check_effects(effects: Sequence[Effect], mode: str) -> list[str]:
    """One line per effect, ✓ or ✗ with its numbers. In ``class`` and ``full`` mode an effect
    that does not show raises :class:`TakeawayError` (the budget was sized to show it); in
    ``fast`` mode the lines only report."""
    lines = [f"{'✓' if e.holds else '✗'} {e.claim} ({e.numbers})" for e in effects]
    missing = [e for e in effects if not e.holds]
    if missing and mode != "fast":
        raise TakeawayError(
            f"{len(missing)} effect(s) this notebook teaches did not show in {mode} mode: "
            + "; ".join(f"{e.claim} ({e.numbers})" for e in missing)
            + ". The run differs from the one the notebook was written for (another profile, "
            "seed or budget?): read the numbers above and say what they show instead"
        )
    if missing:
        lines.append("(fast mode is a smoke test: CLVIZ_MODE=class shows every effect)")
    return lines


def _gap(a: float, b: float) -> str:
    return f"{a:.1f} against {b:.1f}"


SATURATED = 90.0  # zero-shot accuracy (%) above which a task leaves too little to learn
TRANSFER_KEPT = 2.0  # points: a Transfer this close to zero-shot's is kept
WELL_ABOVE = 3.0  # points: a Last this far above zero-shot's shows learning that was held


def learned_effect(result: RunResult) -> Effect:
    """``result``'s method learned: right after each task, its accuracy on it is above the
    untouched backbone's, on every task zero-shot leaves room on (below :data:`SATURATED`)."""
    diagonal = np.diag(np.asarray(result.matrix, dtype=float))
    gains = {
        task: float(acc - zs)
        for task, acc, zs in zip(result.tasks, diagonal, result.zero_shot, strict=False)
        if zs is not None and zs < SATURATED
    }
    if not gains:
        return Effect(f"{result.method} learned", False, "zero-shot saturates every task")
    worst = min(gains, key=gains.get)
    return Effect(
        f"{result.method} learned each task: right after it, above zero-shot",
        gains[worst] > 0,
        f"mean gain {np.mean(list(gains.values())):+.1f} points on {len(gains)} tasks "
        f"below {SATURATED:.0f} % zero-shot; smallest {gains[worst]:+.1f} on {worst}",
    )


def learned_effects(results: Mapping[str, RunResult]) -> list[Effect]:
    """:func:`learned_effect` for every trained method of ``results`` (all but zero-shot)."""
    return [learned_effect(r) for name, r in results.items() if name != "zero-shot"]


def _transfer_lost(results: Mapping[str, RunResult], claim: str) -> Effect:
    """Fine-tuning's Transfer noticeably below zero-shot's (notebooks 02 and 08)."""
    zs, ft = results["zero-shot"].metrics, results["finetune"].metrics
    return Effect(
        claim, ft.transfer < zs.transfer - NOTICEABLE, f"Transfer {_gap(ft.transfer, zs.transfer)}"
    )


def distance_above_diagonal(result: RunResult, reference: RunResult) -> float:
    """Mean absolute difference, in points, between ``result`` and ``reference`` on the tasks
    not learned yet (above the diagonal): how far training moved them."""
    a, b = (np.asarray(r.matrix, dtype=float) for r in (result, reference))
    above = np.triu_indices_from(a, k=1)
    return float(np.abs(a[above] - b[above]).mean()) if len(above[0]) else 0.0


def learning_effects(results: Mapping[str, RunResult]) -> list[Effect]:
    """Notebook 01: fine-tuning learns each task (its diagonal beats zero-shot's), forgets part
    of it, and moves the tasks not learned yet too."""
    zs, ft = results["zero-shot"], results["finetune"]
    moved = distance_above_diagonal(ft, zs)
    return [
        *learned_effects(results),
        Effect(
            "fine-tuning's diagonal is above zero-shot's on average",
            diagonal_mean(ft) > diagonal_mean(zs) + NOTICEABLE,
            f"mean diagonal {_gap(diagonal_mean(ft), diagonal_mean(zs))}",
        ),
        Effect(
            "and forgets part of it by the end of the stream",
            ft.metrics.forgetting >= NOTICEABLE,
            f"forgetting {ft.metrics.forgetting:.1f} points",
        ),
        Effect(
            "training moves the accuracy of tasks not learned yet",
            moved >= NOTICEABLE,
            f"above the diagonal, {moved:.1f} points from zero-shot on average",
        ),
    ]


def forgetting_effects(results: Mapping[str, RunResult]) -> list[Effect]:
    """Notebook 02: fine-tuning loses Transfer and forgets; a remedy (LwF or ZSCL) forgets
    less."""
    ft = results["finetune"].metrics
    effects = [
        *learned_effects(results),
        _transfer_lost(results, "fine-tuning's Transfer falls below zero-shot's"),
        Effect(
            "fine-tuning forgets",
            ft.forgetting >= NOTICEABLE,
            f"forgetting {ft.forgetting:.1f} points",
        ),
    ]
    remedies = [n for n in ("lwf", "zscl") if n in results]
    if remedies:
        best = min(remedies, key=lambda n: results[n].metrics.forgetting)
        kept = results[best].metrics.forgetting
        effects.append(
            Effect(
                "distillation forgets less than fine-tuning",
                kept < ft.forgetting - NOTICEABLE,
                f"{best} forgetting {_gap(kept, ft.forgetting)}",
            )
        )
    if "zscl" in results:
        effects.append(_transfer_kept(results, "zscl"))
    return effects


def _transfer_kept(results: Mapping[str, RunResult], name: str) -> Effect:
    """``name``'s Transfer within :data:`TRANSFER_KEPT` points of zero-shot's (or above)."""
    zs, m = results["zero-shot"].metrics, results[name].metrics
    return Effect(
        f"{name} keeps Transfer: within {TRANSFER_KEPT:g} points of zero-shot",
        m.transfer >= zs.transfer - TRANSFER_KEPT,
        f"Transfer {_gap(m.transfer, zs.transfer)}",
    )


def _last_well_above(results: Mapping[str, RunResult], name: str) -> Effect:
    """``name``'s Last at least :data:`WELL_ABOVE` points above zero-shot's: it learned the
    tasks and still holds them at the end."""
    zs, m = results["zero-shot"].metrics, results[name].metrics
    return Effect(
        f"{name} holds what it learned: Last well above zero-shot",
        m.last >= zs.last + WELL_ABOVE,
        f"Last {_gap(m.last, zs.last)}",
    )


def moe_effects(results: Mapping[str, RunResult]) -> list[Effect]:
    """Notebook 03: frozen experts and per-task routers keep what was learned."""
    ft, moe = results["finetune"].metrics, results["moe-adapters-taskid"].metrics
    return [
        *learned_effects(results),
        _last_well_above(results, "moe-adapters-taskid"),
        Effect(
            "MoE-Adapters (task id given) forget less than fine-tuning",
            moe.forgetting < ft.forgetting - NOTICEABLE,
            f"forgetting {_gap(moe.forgetting, ft.forgetting)}",
        ),
    ]


def ddas_effects(results: Mapping[str, RunResult]) -> list[Effect]:
    """Notebook 04: DDAS rescues the Transfer the newest router loses, by sending unfamiliar
    images to the untouched backbone."""
    zs = results["zero-shot"].metrics
    taskid, ddas = results["moe-adapters-taskid"].metrics, results["moe-adapters"].metrics
    near = {
        name: distance_above_diagonal(results[name], results["zero-shot"])
        for name in ("moe-adapters", "moe-adapters-taskid")
    }
    return [
        *learned_effects(results),
        _last_well_above(results, "moe-adapters"),
        _transfer_kept(results, "moe-adapters"),
        Effect(
            "the newest router hurts tasks not learned yet",
            taskid.transfer < zs.transfer - NOTICEABLE,
            f"Transfer with the task id {_gap(taskid.transfer, zs.transfer)} (zero-shot)",
        ),
        Effect(
            "DDAS rescues Transfer",
            ddas.transfer > taskid.transfer + NOTICEABLE,
            f"Transfer with DDAS {_gap(ddas.transfer, taskid.transfer)} (task id)",
        ),
        Effect(
            "above the diagonal, DDAS stays closer to the zero-shot row",
            near["moe-adapters"] < near["moe-adapters-taskid"] - NOTICEABLE,
            f"mean distance from zero-shot {near['moe-adapters']:.1f} points with DDAS, "
            f"{near['moe-adapters-taskid']:.1f} with the task id",
        ),
    ]


def atlas_effects(
    protocol: Mapping[str, object], results: Mapping[str, RunResult] | None = None
) -> list[Effect]:
    """Notebook 05: ATLAS (and every method of ``results``, its comparison on the stream)
    learned; ATLAS forgets less upstream than continual fine-tuning, the stage ablation moves
    downstream accuracy, and the two upstream orders give different models."""
    effects = learned_effects(results or {})
    forgetting = {
        order: tuple(r.upstream[m].metrics.forgetting for m in ("atlas", "finetune"))
        for order, r in protocol.items()
    }
    effects.append(
        Effect(
            "upstream, ATLAS forgets less than continual fine-tuning",
            all(a < f for a, f in forgetting.values()),
            "; ".join(f"{o}: {_gap(a, f)}" for o, (a, f) in forgetting.items()),
        )
    )
    spreads = {
        order: np.ptp([r.downstream.transfer(s) for s in ("stage1", "stage2", "both")])
        for order, r in protocol.items()
    }
    effects.append(
        Effect(
            "which stages learn downstream matters",
            max(spreads.values()) >= NOTICEABLE,
            "; ".join(f"{o}: spread {s:.1f} points" for o, s in spreads.items()),
        )
    )
    means = {
        order: [float(np.mean(r.downstream.accuracy[s])) for s in ("stage1", "stage2", "both")]
        for order, r in protocol.items()
    }
    first, second = means.values()
    differ = max(abs(a - b) for a, b in zip(first, second, strict=True))
    effects.append(
        Effect(
            "the upstream order changes what is learned downstream",
            differ >= 0.5,
            f"largest difference between the orders {differ:.1f} points",
        )
    )
    return effects


def mulki_effects(
    results: Mapping[str, RunResult], ablation: Mapping[str, RunResult]
) -> list[Effect]:
    """Notebook 06: MulKI keeps more Transfer than fine-tuning, and switching stages off
    changes the result."""
    ft, mulki = results["finetune"].metrics, results["mulki"].metrics
    full = ablation["all stages"].metrics
    changes = {
        label: abs(r.metrics.avg - full.avg) + abs(r.metrics.transfer - full.transfer)
        for label, r in ablation.items()
        if label != "all stages"
    }
    biggest = max(changes, key=changes.get)
    return [
        *learned_effects(results),
        _transfer_kept(results, "mulki"),
        Effect(
            "MulKI keeps more Transfer than fine-tuning",
            mulki.transfer > ft.transfer + NOTICEABLE,
            f"Transfer {_gap(mulki.transfer, ft.transfer)}",
        ),
        Effect(
            "switching a stage off changes the result",
            changes[biggest] >= NOTICEABLE,
            f"largest change of Transfer + Avg: {biggest}, {changes[biggest]:.1f} points",
        ),
    ]


def drift_effects(
    summaries: Mapping[str, Mapping[str, float]], results: Mapping[str, RunResult]
) -> list[Effect]:
    """Notebook 07's three questions: fine-tuning moves the image features; distillation
    (ZSCL, MulKI) holds them near the initial model; and drift is not forgetting, since
    MoE-Adapters' features may move while their old tasks stay solved."""
    ft = summaries["finetune"]["cka_embedding_last"]
    effects = [
        Effect(
            "fine-tuning moves the image features",
            ft < 1 - 0.01,
            f"final CKA {ft:.3f} against the initial model",
        )
    ]
    held = [n for n in ("zscl", "mulki") if n in summaries]
    if held:
        best = max(held, key=lambda n: summaries[n]["cka_embedding_last"])
        cka = summaries[best]["cka_embedding_last"]
        effects.append(
            Effect(
                "distillation holds the features nearer the initial model",
                cka > ft + 0.01,
                f"{best} final CKA {cka:.3f} against fine-tuning's {ft:.3f}",
            )
        )
    if "moe-adapters" in summaries:
        moe = results["moe-adapters"].metrics.forgetting
        forgot = results["finetune"].metrics.forgetting
        effects.append(
            Effect(
                "drift is not forgetting: MoE-Adapters forget far less than fine-tuning",
                moe < forgot - NOTICEABLE,
                f"forgetting {_gap(moe, forgot)}, with final CKA "
                f"{summaries['moe-adapters']['cka_embedding_last']:.3f} against {ft:.3f}",
            )
        )
    return effects


def comparison_effects(results: Mapping[str, RunResult]) -> list[Effect]:
    """Notebook 08: the published MTIL shape in its two most robust parts."""
    ft = results["finetune"].metrics
    trained = {n: r.metrics for n, r in results.items() if n != "zero-shot"}
    keep = [n for n in ("zscl", "mulki", "moe-adapters") if n in trained]
    best = max(keep, key=lambda n: trained[n].transfer) if keep else None
    effects = [
        *learned_effects(results),
        _transfer_lost(results, "fine-tuning loses Transfer against zero-shot"),
    ]
    if best is not None:
        effects.append(
            Effect(
                "the methods built to keep zero-shot skills keep more Transfer",
                trained[best].transfer > ft.transfer + NOTICEABLE,
                f"{best} {_gap(trained[best].transfer, ft.transfer)} (fine-tuning)",
            )
        )
    return effects
