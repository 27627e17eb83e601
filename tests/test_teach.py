"""The exercise checkers accept the right answer and name each common mistake; take-away
checks fail when the numbers contradict the sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clviz.teach import (
    TakeawayError,
    check_ddas_decision,
    check_distillation_loss,
    check_top_k_router,
    check_transfer,
    check_wise_ft,
    expect,
)


def test_expect_returns_the_claim_or_fails_naming_it():
    assert expect(1 < 2, "one is less than two") == "one is less than two"
    with pytest.raises(TakeawayError, match=r"'fine-tuning forgets' does not hold .*BWT \+2.0"):
        expect(False, "fine-tuning forgets", "BWT +2.0")


def not_written(*args):
    raise NotImplementedError


# ------------------------------------------------------------------ Transfer
def transfer_right(a):
    return float(np.mean([a[:d, d].mean() for d in range(1, len(a))]))


@pytest.mark.parametrize(
    "answer, symptom",
    [
        (
            lambda a: float(a[np.triu_indices(len(a), 1)].mean()),
            "every entry above the diagonal at once",
        ),
        (
            lambda a: float(np.mean([a[: d + 1, d].mean() for d in range(1, len(a))])),
            "includes the diagonal",
        ),
        (lambda a: float(a[np.tril_indices(len(a), -1)].mean()), "below the diagonal"),
        (lambda a: None, "returns None"),
        (not_written, "not written yet"),
        (lambda a: 1 / 0, "raised ZeroDivisionError"),
    ],
)
def test_transfer_checker_names_the_mistake(answer, symptom, capsys):
    feedback = check_transfer(answer)
    assert not feedback.ok and symptom in feedback.message
    assert "not yet" in capsys.readouterr().out


def test_transfer_checker_accepts_the_right_answer():
    assert check_transfer(transfer_right).ok


# ------------------------------------------------------------------ top-k router
def router_right(logits, k):
    top, index = logits.topk(k, dim=-1)
    return index, F.softmax(top, dim=-1)


def test_top_k_router_checker():
    assert check_top_k_router(router_right).ok
    assert check_top_k_router(
        lambda x, k: (x.topk(k)[1].flip(-1), F.softmax(x.topk(k)[0], -1).flip(-1))
    ).ok
    unnormalised = check_top_k_router(lambda x, k: (x.topk(k)[1], F.softmax(x, -1).topk(k)[0]))
    assert not unnormalised.ok and "sum to 1" in unnormalised.message
    smallest = check_top_k_router(
        lambda x, k: (x.topk(k, largest=False)[1], torch.full((3, k), 1 / k))
    )
    assert not smallest.ok and "k largest" in smallest.message
    raw = check_top_k_router(
        lambda x, k: (x.topk(k)[1], x.topk(k)[0] / x.topk(k)[0].sum(-1, keepdim=True))
    )
    assert not raw.ok


# ------------------------------------------------------------------ distillation loss
def distill_right(t, s, temperature):
    p = F.softmax(t / temperature, -1)
    return -(p * F.log_softmax(s / temperature, -1)).sum(-1).mean() * temperature**2


def test_distillation_checker():
    assert check_distillation_loss(distill_right).ok
    no_t2 = check_distillation_loss(lambda t, s, T: distill_right(t, s, T) / T**2)
    assert not no_t2.ok and "factor that depends on T" in no_t2.message
    kl = check_distillation_loss(
        lambda t, s, T: (
            F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T**2
        )
    )
    assert not kl.ok and "KL divergence" in kl.message
    swapped = check_distillation_loss(lambda t, s, T: distill_right(s, t, T))
    assert not swapped.ok and "wrong way round" in swapped.message


# ------------------------------------------------------------------ DDAS decision
def ddas_right(errors, generic, threshold):
    best, task = errors.min(dim=1)
    by_generic = generic <= best
    return task, by_generic | (best > threshold)


def test_ddas_checker():
    assert check_ddas_decision(ddas_right).ok
    strict = check_ddas_decision(
        lambda e, g, th: (e.argmin(1), (g < e.min(1).values) | (e.min(1).values > th))
    )
    assert not strict.ok and "tie" in strict.message
    no_generic = check_ddas_decision(lambda e, g, th: (e.argmin(1), e.min(1).values > th))
    assert not no_generic.ok and "generic" in no_generic.message
    no_threshold = check_ddas_decision(lambda e, g, th: (e.argmin(1), g <= e.min(1).values))
    assert not no_threshold.ok and "threshold" in no_threshold.message
    wrong_task = check_ddas_decision(lambda e, g, th: (e.argmax(1), g <= e.min(1).values))
    assert not wrong_task.ok and "winning task" in wrong_task.message


# ------------------------------------------------------------------ WiSE-FT
def test_wise_ft_checker():
    assert check_wise_ft(lambda b, a, alpha: (1 - alpha) * b + alpha * a).ok
    swapped = check_wise_ft(lambda b, a, alpha: alpha * b + (1 - alpha) * a)
    assert not swapped.ok and "wrong end" in swapped.message
    off_line = check_wise_ft(lambda b, a, alpha: a + alpha)
    assert not off_line.ok and "straight line" in off_line.message


def _result(name, matrix):
    from clviz.core.result import RunResult

    return RunResult(method=name, tasks=["a", "b", "c"], matrix=matrix, zero_shot=[50.0] * 3)


def test_forgetting_takeaways_follow_the_numbers():
    from clviz.teach.takeaways import forgetting_takeaways

    zs = _result("zero-shot", [[50.0] * 3] * 3)
    forgets = _result("finetune", [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]])
    lines = forgetting_takeaways({"zero-shot": zs, "finetune": forgets})
    assert lines[0].startswith("Fine-tuning lost 10.0 points of Transfer (40.0")
    assert lines[1].startswith("It forgot 35.0 points")  # (90-50 + 90-60) / 2
    still = _result("finetune", [[51.0, 50.0, 50.0], [51.0, 51.0, 50.0], [51.0, 51.0, 51.0]])
    lines = forgetting_takeaways({"zero-shot": zs, "finetune": still})
    assert lines[0].startswith("Fine-tuning kept its Transfer") and "little" in lines[1]


def test_versus_says_above_below_or_level():
    from clviz.teach.takeaways import versus

    up = _result("a", [[60.0, 60.0, 60.0]] * 3)
    down = _result("b", [[60.0, 40.0, 40.0]] * 3)
    same = _result("c", [[60.0, 59.5, 59.5]] * 3)
    runs = {"a": up, "b": down, "c": same}
    assert versus(runs, "a", "b") == "a's Transfer (60.0) is above b's (40.0)"
    assert versus(runs, "b", "a").startswith("b's Transfer (40.0) is below")
    assert "about level" in versus(runs, "a", "c")


def test_drift_and_comparison_takeaways_quote_the_numbers():
    from clviz.teach.takeaways import comparison_takeaways, drift_takeaways

    zs = _result("zero-shot", [[50.0] * 3] * 3)
    ft = _result("finetune", [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]])
    moe = _result("moe-adapters", [[90.0, 50.0, 50.0], [90.0, 90.0, 50.0], [90.0, 90.0, 90.0]])
    runs = {"zero-shot": zs, "finetune": ft, "moe-adapters": moe}
    summary = {"cka_embedding_last": 0.9, "modality_gap_initial": 0.5, "modality_gap_last": 0.7}
    moe_summary = {**summary, "cka_embedding_last": 0.99}
    lines = drift_takeaways({"finetune": summary, "moe-adapters": moe_summary}, runs)
    assert "CKA 0.900" in lines[0] and "less than fine-tuning" in lines[1]
    lines = comparison_takeaways(runs)
    assert lines[0].startswith("Lowest Transfer of the trained methods: finetune (40.0")
    assert "as on MTIL" in lines[0] and "moe-adapters (50.0)" in lines[1]
    assert "moe-adapters (+40.0 points)" in lines[2]


def test_atlas_takeaways_rank_the_ablations():
    from types import SimpleNamespace

    from clviz.experiments.atlas_protocol import DownstreamResult
    from clviz.teach.takeaways import atlas_takeaways

    upstream = {
        "atlas": _result("atlas", [[90.0, 40.0, 40.0], [90.0, 90.0, 40.0], [90.0, 90.0, 90.0]]),
        "finetune": _result(
            "finetune", [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]]
        ),
    }
    down = DownstreamResult(
        ["a"], ["image"], {"stage1": [52.0], "stage2": [55.0], "both": [55.5], "fresh": [50.0]}
    )
    lines = atlas_takeaways({"multi-first": SimpleNamespace(upstream=upstream, downstream=down)})
    assert lines[0] == (
        "multi-first: upstream, ATLAS forgot nothing (+0.0), "
        "continual fine-tuning forgot 35.0 points."
    )
    assert lines[1].startswith("multi-first: downstream, both transfers best (+5.5")
    assert lines[1].endswith("ahead by less than a point.")


def test_moe_takeaways_and_reuse():
    from clviz.teach.takeaways import moe_takeaways, reuse_takeaway

    zs = _result("zero-shot", [[50.0] * 3] * 3)
    ft = _result("finetune", [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]])
    moe = _result("moe-adapters-taskid", [[90.0, 45.0, 45.0], [90.0, 90.0, 45.0], [90.0] * 3])
    lines = moe_takeaways({"zero-shot": zs, "finetune": ft, "moe-adapters-taskid": moe})
    assert "MoE-Adapters forgot nothing (+0.0) where fine-tuning forgot 35.0 points" in lines[0]
    assert "Transfer 45.0 against the untouched model's 50.0 - tasks not learned" in lines[1]
    assert reuse_takeaway([0.2, 0.4]).startswith("Later tasks sent on average 30 %")
    assert reuse_takeaway([]).startswith("One task only")


def test_zero_shot_alpha_cka_and_bwt_checkers():
    from clviz.teach import check_atlas_alpha, check_bwt, check_linear_cka, check_zero_shot

    def cos(x, y):
        return F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T

    assert check_zero_shot(lambda x, c: cos(x, c).argmax(-1)).ok
    raw = check_zero_shot(lambda x, c: (x @ c.T).argmax(-1))
    assert not raw.ok and "lengths" in raw.message
    worst = check_zero_shot(lambda x, c: cos(x, c).argmin(-1))
    assert not worst.ok and "least similar" in worst.message

    def alpha(z, k):
        return (1 + F.cosine_similarity(z, k[None], dim=-1)) / 2

    assert check_atlas_alpha(alpha).ok
    plain = check_atlas_alpha(lambda z, k: F.cosine_similarity(z, k[None], dim=-1))
    assert not plain.ok and "negative" in plain.message
    softmax = check_atlas_alpha(lambda z, k: torch.softmax(alpha(z, k), -1))
    assert not softmax.ok and "sum to 1" in softmax.message

    def cka(x, y, centre=True):
        x, y = x.double(), y.double()
        if centre:
            x, y = x - x.mean(0), y - y.mean(0)
        return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))

    assert check_linear_cka(cka).ok
    uncentred = check_linear_cka(lambda x, y: cka(x, y, centre=False))
    assert not uncentred.ok and "centring" in uncentred.message
    assert not check_linear_cka(lambda x, y: 1.0).ok

    def bwt(a):
        return float(np.mean([a[-1, d] - a[d, d] for d in range(len(a) - 1)]))

    assert check_bwt(bwt).ok
    flipped = check_bwt(lambda a: -bwt(a))
    assert not flipped.ok and "sign" in flipped.message
    with_last = check_bwt(lambda a: float(np.mean([a[-1, d] - a[d, d] for d in range(len(a))])))
    assert not with_last.ok and "last task" in with_last.message
