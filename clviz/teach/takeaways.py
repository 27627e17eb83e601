"""Take-away sentences written from a run's numbers, so that none contradicts the screen.

A notebook that ends with "fine-tuning forgets" is wrong whenever its budget is too small for
forgetting to show. These functions choose each sentence by the numbers it describes and quote
them, so the same cell is right in fast mode, class mode and full mode.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from clviz.core.result import RunResult
from clviz.experiments.seeds import Spread, difference_is_clear

NOTICEABLE = 1.0  # points: below this a difference is called "about the same"
METRIC_NAMES = {"transfer": "Transfer", "avg": "Avg", "last": "Last", "bwt": "BWT"}


def _judge(a: float, b: float, words: tuple[str, str, str]) -> str:
    """``words`` = (above, below, level): which one ``a`` is against ``b``, a difference
    within :data:`NOTICEABLE` counting as level."""
    if a > b + NOTICEABLE:
        return words[0]
    if a < b - NOTICEABLE:
        return words[1]
    return words[2]


def _compare(a: float, b: float) -> str:
    return _judge(a, b, ("more than", "less than", "about as much as"))


def _forgot(points: float) -> str:
    """ "forgot 2.5 points", or "forgot nothing (-0.8)" when the number is not a loss."""
    return f"forgot {points:.1f} points" if points > 0 else f"forgot nothing ({points:+.1f})"


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
    label = METRIC_NAMES.get(metric, metric)
    if abs(x - y) < NOTICEABLE:
        return f"{a}'s {label} ({x:.1f}) is about level with {b}'s ({y:.1f})"
    return f"{a}'s {label} ({x:.1f}) is {'above' if x > y else 'below'} {b}'s ({y:.1f})"


def drift_takeaways(
    summaries: Mapping[str, Mapping[str, float]], results: Mapping[str, RunResult]
) -> list[str]:
    """Notebook 07's take-aways from each method's drift summary
    (:func:`clviz.main_job.drift_summary`: CKA of the final image embedding and of
    the last image block against the initial model, the modality gap before and after) and
    from the runs' forgetting."""
    ft = summaries["finetune"]
    lines = []
    moved = 1 - ft["cka_embedding_last"]
    lines.append(
        f"Fine-tuning moved the final image embedding to CKA {ft['cka_embedding_last']:.3f} "
        f"against the initial model (1 = unchanged) and its modality gap from "
        f"{ft['modality_gap_initial']:.3f} to {ft['modality_gap_last']:.3f}."
    )
    if "moe-adapters" in summaries:
        moe = summaries["moe-adapters"]
        how_much = _compare(100 * (1 - moe["cka_embedding_last"]), 100 * moved)
        lines.append(
            f"MoE-Adapters moved the probe's image features {how_much} "
            f"fine-tuning (CKA {moe['cka_embedding_last']:.3f} against "
            f"{ft['cka_embedding_last']:.3f}) and "
            f"{_forgot(results['moe-adapters'].metrics.forgetting)} where fine-tuning "
            f"{_forgot(results['finetune'].metrics.forgetting)}: how far features drift and "
            "how much is forgotten are two different questions."
        )
    for name in ("zscl", "mulki"):
        if name in summaries:
            s = summaries[name]
            lines.append(
                f"{name} ends at CKA {s['cka_embedding_last']:.3f} (fine-tuning "
                f"{ft['cka_embedding_last']:.3f}) with Transfer "
                f"{results[name].metrics.transfer:.1f} (fine-tuning "
                f"{results['finetune'].metrics.transfer:.1f})."
            )
    return lines


def comparison_takeaways(results: Mapping[str, RunResult]) -> list[str]:
    """Notebook 08's take-aways: where this run agrees with the published MTIL shape."""
    zs = results["zero-shot"].metrics
    trained = {n: r.metrics for n, r in results.items() if n != "zero-shot"}
    lines = []
    lowest = min(trained, key=lambda n: trained[n].transfer)
    agrees = "as on MTIL" if lowest == "finetune" else "on MTIL it is fine-tuning"
    lines.append(
        f"Lowest Transfer of the trained methods: {lowest} ({trained[lowest].transfer:.1f}; "
        f"zero-shot {zs.transfer:.1f}), {agrees}."
    )
    closest = min(trained, key=lambda n: abs(trained[n].transfer - zs.transfer))
    lines.append(
        f"Closest to zero-shot's Transfer: {closest} ({trained[closest].transfer:.1f}); on MTIL "
        "it is MoE-Adapters with DDAS and MulKI."
    )
    gains = {n: m.last - zs.last for n, m in trained.items()}
    best = max(gains, key=gains.get)
    lines.append(
        f"The largest gain in Last over zero-shot: {best} ({gains[best]:+.1f} points); "
        f"{sum(g > 0 for g in gains.values())} of {len(gains)} trained methods end above "
        "zero-shot's Last."
    )
    above = [n for n, m in trained.items() if m.transfer > zs.transfer + NOTICEABLE]
    if above:
        lines.append(
            f"Transfer above zero-shot's: {', '.join(above)}: learning one task helped a task "
            "not learned yet (tasks of the embedded world share drawings)."
        )
    return lines


def atlas_takeaways(protocol: Mapping[str, object]) -> list[str]:
    """Notebook 05's take-aways from the ATLAS protocol's results by order
    (:class:`~clviz.experiments.atlas_protocol.ProtocolResult`): forgetting upstream, and
    which downstream learner did best against a fresh adapter."""
    lines = []
    for order, result in protocol.items():
        atlas, ft = (result.upstream[m].metrics for m in ("atlas", "finetune"))
        lines.append(
            f"{order}: upstream, ATLAS {_forgot(atlas.forgetting)}, continual fine-tuning "
            f"{_forgot(ft.forgetting)}."
        )
        down = result.downstream
        ranked = sorted(("stage1", "stage2", "both"), key=down.transfer, reverse=True)
        gap = down.transfer(ranked[0]) - down.transfer(ranked[1])
        verdict = "clearly ahead" if gap >= NOTICEABLE else "ahead by less than a point"
        lines.append(
            f"{order}: downstream, {ranked[0]} transfers best ({down.transfer(ranked[0]):+.1f} "
            f"points against a fresh adapter; {ranked[1]} {down.transfer(ranked[1]):+.1f}, "
            f"{ranked[2]} {down.transfer(ranked[2]):+.1f}): {verdict}."
        )
    return lines


def moe_takeaways(results: Mapping[str, RunResult]) -> list[str]:
    """Notebook 03's take-aways: what MoE-Adapters (told the task id) keep below the diagonal
    and lose above it, against fine-tuning and the untouched model."""
    zs, ft = results["zero-shot"].metrics, results["finetune"].metrics
    moe = results["moe-adapters-taskid"].metrics
    return [
        f"Below the diagonal: MoE-Adapters {_forgot(moe.forgetting)} where fine-tuning "
        f"{_forgot(ft.forgetting)}; frozen experts and per-task routers hold what was learned.",
        f"Above it: Transfer {moe.transfer:.1f} against the untouched model's {zs.transfer:.1f}"
        + (
            " - tasks not learned yet go through the newest router, trained for another "
            "domain. That is what DDAS addresses (notebook 04)."
            if moe.transfer < zs.transfer - NOTICEABLE
            else "; in this run the newest router did not hurt the tasks not learned yet."
        ),
    ]


def reuse_takeaway(shares: list[float]) -> str:
    """Notebook 03's sentence on activate-freeze from :func:`clviz.figures.moe.frozen_reuse`
    (each later task's share of router choices that went to experts frozen earlier)."""
    if not shares:
        return "One task only: no expert was frozen before it."
    mean = 100 * sum(shares) / len(shares)
    return (
        f"Later tasks sent on average {mean:.0f} % of their router choices to experts frozen by "
        f"earlier tasks (from {100 * min(shares):.0f} % to {100 * max(shares):.0f} %): that "
        "is the knowledge they reuse; the rest went to experts still free to learn."
    )


def seed_takeaways(
    table: Mapping[str, Mapping[str, Spread]],
    a: str,
    b: str,
    metrics: tuple[str, ...] = ("transfer", "last"),
) -> list[str]:
    """Notebook 08's sentences on seeds, from :func:`clviz.experiments.seeds.spreads`: for each
    metric, is ``a`` against ``b`` a clear difference or within the seeds' spread?"""
    lines = []
    for metric in metrics:
        x, y = table[a][metric], table[b][metric]
        verdict = (
            "clear: the mean ± std ranges do not overlap"
            if difference_is_clear(x, y)
            else "within the spread of the seeds: another seed could reverse it"
        )
        lines.append(
            f"{METRIC_NAMES.get(metric, metric)}: {a} {x} against {b} {y}, a difference of "
            f"{x.mean - y.mean:+.1f} points over {len(x.values)} seeds: {verdict}."
        )
    return lines


def _relation(a: float, b: float) -> str:
    return _judge(a, b, ("above", "below", "about level with"))


def atlas_transfer_takeaway(results: Mapping[str, RunResult]) -> str:
    """Where ATLAS's Transfer sits against zero-shot's (and fine-tuning's, when ``results``
    holds ``finetune``), and why, for notebooks 05 and 08 and the main job's report.

    The mechanism is the code's (:mod:`clviz.methods.atlas`): a task not learned yet is
    evaluated with the newest task's query set over every adapter so far, in both towers, and
    no site hands it back to the untouched backbone (MoE-Adapters' DDAS does). The sentence
    blames that path for a loss only when the numbers show one."""
    at = results["atlas"].metrics.transfer
    zs = results["zero-shot"].metrics.transfer
    where = f"ATLAS's Transfer ({at:.1f}) is "
    if abs(at - zs) < NOTICEABLE:
        where += f"about level with zero-shot's ({zs:.1f})"
    else:
        where += f"{abs(at - zs):.1f} points {_relation(at, zs)} zero-shot's ({zs:.1f})"
    if "finetune" in results:
        ft = results["finetune"].metrics.transfer
        where += f" and {_relation(at, ft)} fine-tuning's ({ft:.1f})"
    if len(results) > 2 and at == min(r.metrics.transfer for r in results.values()):
        where += f", the lowest of the {len(results)} methods here"
    path = (
        "a task not learned yet, its images and its class texts alike, goes through every "
        "adapter learned so far, weighted by the newest task's queries, with no way back to the "
        "untouched backbone (each site replaces a block's attention or MLP output with the "
        "alpha-weighted sum of its adapters' outputs, and the alphas are not normalised: with "
        "several adapters that sum scales the output itself)"
    )
    if at < zs - NOTICEABLE:
        return (
            f"{where}. Why: {path}, so it is classified by a model adapted to other tasks. "
            "MoE-Adapters' DDAS, by contrast, sends images that look unfamiliar to the frozen "
            "backbone."
        )
    if at > zs + NOTICEABLE:
        return (
            f"{where}: although {path}, in this run the adapters helped the tasks not learned "
            "yet rather than hurt them."
        )
    return (
        f"{where}: although {path}, in this run the adapters hardly changed the accuracy of "
        "the tasks not learned yet."
    )


def zeroshot_takeaways(
    accuracy: Mapping[str, float], chance: Mapping[str, float], solved: float = 90.0
) -> list[str]:
    """Notebook 00's reading of the zero-shot bars: how far above chance each task starts, and
    how much room is left to learn (tasks below ``solved`` percent)."""
    margins = {name: accuracy[name] - chance[name] for name in accuracy}
    lowest = min(margins, key=margins.get)
    above = [n for n, m in margins.items() if m >= NOTICEABLE]
    lines = []
    if len(above) == len(margins):
        lines.append(
            f"Every task starts above chance: the closest is {lowest}, "
            f"{margins[lowest]:.1f} points above its chance level of {chance[lowest]:.1f} %."
        )
    else:
        near = [n for n in margins if n not in above]
        lines.append(
            f"{len(above)} of {len(margins)} tasks start above chance; "
            f"{', '.join(near)} sit at chance level: the tiny CLIP cannot read them yet."
        )
    room = [n for n, a in accuracy.items() if a < solved]
    if room:
        worst = min(room, key=accuracy.get)
        lines.append(
            f"{len(room)} of {len(accuracy)} tasks are below {solved:.0f} % "
            f"(the lowest, {worst}, at {accuracy[worst]:.1f} %): "
            "room to learn each task, and zero-shot ability to lose while learning the others. "
            "The next notebooks measure both."
        )
    else:
        lines.append(f"Zero-shot already solves every task (all at {solved:.0f} % or more).")
    return lines


def ddas_takeaways(results: Mapping[str, RunResult]) -> list[str]:
    """Notebook 04's take-aways: what DDAS does to Transfer and to Last against the task-id
    oracle and zero-shot, and how often it picked the right router (per sample)."""
    zs = results["zero-shot"].metrics
    oracle, ddas = results["moe-adapters-taskid"].metrics, results["moe-adapters"].metrics
    lines = [
        f"Without a task id, DDAS kept Transfer at {ddas.transfer:.1f} (zero-shot "
        f"{zs.transfer:.1f}; the newest router, told the task, {oracle.transfer:.1f}): "
        + (
            "images of tasks not learned yet went back to the untouched backbone."
            if ddas.transfer > oracle.transfer + NOTICEABLE
            else "here it did not rescue the tasks not learned yet."
        )
    ]
    cost = oracle.last - ddas.last
    lines.append(
        f"Last with DDAS is {ddas.last:.1f} against {oracle.last:.1f} with the task id and "
        f"{zs.last:.1f} for zero-shot: "
        + (
            f"guessing the router costs {cost:.1f} points of what the routers learned."
            if cost >= NOTICEABLE
            else "guessing the router cost almost nothing of what the routers learned."
        )
    )
    record = results["moe-adapters"].record
    if record is not None and getattr(record, "ddas", None):
        correct = record.ddas["per_sample"].correct
        worst = min(correct, key=correct.get)
        lines.append(
            f"After the last task, DDAS picked each image's own router "
            f"{np.mean(list(correct.values())):.1f} % of the time on average (per sample); "
            f"worst on {worst} ({correct[worst]:.1f} %)."
        )
    return lines
