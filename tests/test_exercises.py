"""The notebooks' exercise checkers: each accepts the right answer (numpy arrays too), shows
its feedback once, turns any unusable answer into a hint that names what was expected
(never a traceback), and gives each known wrong answer a hint that is true for it and names
the case it failed on. The rule each exercise tests is stated right above it in its notebook."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from IPython.core.formatters import DisplayFormatter

from clviz.teach import (
    EXERCISES,
    Feedback,
    check_atlas_alpha,
    check_bwt,
    check_ddas_decision,
    check_distillation_loss,
    check_linear_cka,
    check_top_k_router,
    check_transfer,
    check_wise_ft,
    check_zero_shot,
    exercises,
)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


# ------------------------------------------------------------------ the right answers
def transfer_right(a):
    return float(np.mean([a[:d, d].mean() for d in range(1, len(a))]))


def bwt_right(a):
    return float(np.mean([a[-1, d] - a[d, d] for d in range(len(a) - 1)]))


def router_right(logits, k):
    top, index = logits.topk(k, dim=-1)
    return index, F.softmax(top, dim=-1)


def distill_right(t, s, temperature):
    p = F.softmax(t / temperature, -1)
    return -(p * F.log_softmax(s / temperature, -1)).sum(-1).mean() * temperature**2


def ddas_right(errors, generic, threshold):
    best, task = errors.min(dim=1)
    return task, (generic <= best) | (best > threshold)


def wise_ft_right(before, after, alpha):
    return (1 - alpha) * before + alpha * after


def cos(x, y):
    return F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T


def zero_shot_right(image, classes):
    return cos(image, classes).argmax(-1)


def alpha_right(z, keys):
    return (1 + F.cosine_similarity(z, keys[None], dim=-1)) / 2


def cka(x, y, centre=True):
    x, y = x.double(), y.double()
    if centre:
        x, y = x - x.mean(0), y - y.mean(0)
    return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


RIGHT = {
    "transfer": transfer_right,
    "top_k_router": router_right,
    "distillation_loss": distill_right,
    "ddas_decision": ddas_right,
    "wise_ft": wise_ft_right,
    "zero_shot": zero_shot_right,
    "atlas_alpha": alpha_right,
    "linear_cka": cka,
    "bwt": bwt_right,
}

EXPECTED = {  # the words of each checker's hint that name the answer it expects
    "transfer": "expected one number, the Transfer of the matrix",
    "top_k_router": "expected a tuple (index, gates) of two 3 x 2 tensors",
    "distillation_loss": "expected one number (a float or a 0-d tensor), the loss averaged",
    "ddas_decision": "expected a tuple (task, to_backbone) of two tensors of 6 values",
    "wise_ft": "expected a tensor of shape (3,), the mixed weights",
    "zero_shot": "expected a tensor of 5 integers, one class index per image",
    "atlas_alpha": "expected a 2 x 3 tensor, one alpha per sample and adapter",
    "linear_cka": "expected one number (a float or a 0-d tensor), the CKA of x and y",
    "bwt": "expected one number, the BWT of the matrix",
}
EXPECTED_ITEM = {  # for a pair of the wrong things: what its first item should be
    "top_k_router": "expected index, a 3 x 2 tensor of integers",
    "ddas_decision": "expected task, 6 integer task indices",
}
NUMBER_ANSWERS = {"transfer", "bwt", "distillation_loss", "linear_cka"}


def test_every_exercise_has_a_right_answer_here():
    assert set(RIGHT) == set(EXERCISES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_the_right_answer_passes_as_torch_and_as_numpy(name):
    def as_numpy(*args):
        out = RIGHT[name](*args)
        if isinstance(out, tuple):
            return tuple(x.numpy() for x in out)
        return out.numpy() if isinstance(out, torch.Tensor) else np.float64(out)

    assert EXERCISES[name](RIGHT[name]).ok
    assert EXERCISES[name](as_numpy).ok


# ------------------------------------------------------------------ one message, shown once
def test_feedback_shows_one_message_in_jupyter_at_the_prompt_and_in_print(capsys):
    feedback = check_bwt(lambda a: -bwt_right(a))
    assert capsys.readouterr().out == ""  # the checker itself prints nothing
    line = str(feedback)
    assert line.startswith("[BWT: not yet] ") and "\n" not in line
    shown, metadata = DisplayFormatter().format(feedback)  # what Jupyter shows for Out[n]
    assert shown == {"text/plain": line} and metadata == {}
    assert repr(feedback) == line
    print(check_bwt(bwt_right))
    assert capsys.readouterr().out == "[BWT: correct] right on 2 matrices\n"


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_no_checker_prints(name, capsys):
    EXERCISES[name](RIGHT[name])
    EXERCISES[name](lambda *args: None)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------ unusable answers
def raises(*args):
    raise ValueError("bad\nsecond line")


def not_written(*args):
    raise NotImplementedError


UNUSABLE = {
    "None": None,
    "a str": "abc",
    "a tuple of 3": (1, 2, 3),
    "a dict": {"index": 1},
    "a list of str": ["a", "b"],
    "a bool": True,
    "nan": float("nan"),
    "inf": float("inf"),
    "a numpy str array": np.array(["a", "b"]),
    "a complex tensor": torch.tensor([1 + 2j]),
    "a 7 x 7 nan tensor": torch.full((7, 7), float("nan")),
    "an empty tensor": torch.zeros(0),
    "an object": object(),
    "a pair of None": (None, None),
    "a pair of str": ("a", "b"),
}


@pytest.mark.parametrize("kind", list(UNUSABLE))
@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_an_unusable_answer_is_named_against_what_was_expected(name, kind):
    value = UNUSABLE[kind]
    feedback = EXERCISES[name](lambda *args: value)
    assert isinstance(feedback, Feedback) and not feedback.ok
    pair = isinstance(value, tuple | list) and len(value) == 2 and name in EXPECTED_ITEM
    assert (EXPECTED_ITEM if pair else EXPECTED)[name] in feedback.message, feedback.message
    assert "got " in feedback.message


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_a_raising_unwritten_or_misdeclared_function_is_named_too(name):
    check = EXERCISES[name]
    raised = check(raises)
    assert not raised.ok and "raised ValueError: bad;" in raised.message
    assert EXPECTED[name] in raised.message and "second line" not in raised.message
    unwritten = check(not_written)  # the first message of every exercise: no case named
    assert unwritten.message.startswith("the function is not written yet; " + EXPECTED[name])
    arity = check(lambda: 1)
    assert "raised TypeError" in arity.message and EXPECTED[name] in arity.message
    generator = check(lambda *args: (x for x in ()))
    assert "got a generator" in generator.message
    assert "pass your function itself" in check(3.0).message  # its result, not the function


def _mutated(name, change):
    """The right answer with ``change`` applied to each tensor or number it returns."""

    def fn(*args):
        out = RIGHT[name](*args)
        if isinstance(out, tuple):
            return tuple(change(torch.as_tensor(x)) for x in out)
        return change(torch.as_tensor(out))

    return fn


MUTATIONS = {  # a number (0-d) of one value stays a number: it takes two to be wrong
    "a trailing dimension": lambda t: t[..., None] if t.dim() else t.expand(2)[..., None],
    "one value too many": lambda t: torch.cat([t.reshape(-1), t.reshape(-1)[:1]]),
    "nan of the right shape": lambda t: torch.full(t.shape, float("nan")),
    "as a list": lambda t: t.tolist() if t.dim() else [t.item()],
    "as a numpy object array": lambda t: np.array(t.tolist(), dtype=object),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_a_wrong_shape_or_kind_is_named_against_what_was_expected(name, mutation):
    feedback = EXERCISES[name](_mutated(name, MUTATIONS[mutation]))
    assert not feedback.ok and "expected " in feedback.message and "got " in feedback.message


@pytest.mark.parametrize("name", sorted(set(EXERCISES) - NUMBER_ANSWERS))
def test_a_number_where_tensors_are_expected_is_named(name):
    feedback = EXERCISES[name](lambda *args: 0.5)
    assert not feedback.ok and EXPECTED[name] in feedback.message
    assert "got a float (0.5)" in feedback.message


# ------------------------------------------------------------------ true hints for each mistake
def ddas_rule(strict_tie=False, threshold=True, generic=True, at_threshold=False):
    def fn(e, g, th):
        best = e.min(1).values
        by_generic = (g < best if strict_tie else g <= best) & generic
        by_threshold = (best >= th if at_threshold else best > th) & threshold
        return e.argmin(1), by_generic | by_threshold

    return fn


def kl(t, s, temperature):
    p, log_q = F.softmax(t / temperature, -1), F.log_softmax(s / temperature, -1)
    return F.kl_div(log_q, p, reduction="batchmean") * temperature**2


MATRIX = "on case 1 of 2, the 3 x 3 matrix [[80, 30, 20], [70, 90, 40], [60, 85, 95]]: "
RANDOM = "on case 2 of 2, a random 5 x 5 matrix (clviz.teach.exercises.TRANSFER_CASES[1]): "

MISTAKES = [
    # Transfer (02)
    (
        check_transfer,
        lambda a: float(a[np.triu_indices(len(a), 1)].mean()),
        [RANDOM, "every entry above the diagonal at once"],
    ),
    (
        check_transfer,
        lambda a: float(np.mean([a[: d + 1, d].mean() for d in range(1, len(a))])),
        [MATRIX + "your 55.83 is not its Transfer", "includes the diagonal"],
    ),
    (
        check_transfer,
        lambda a: float(a[np.tril_indices(len(a), -1)].mean()),
        [MATRIX, "below the diagonal"],
    ),
    (
        check_transfer,
        lambda a: float(np.mean([a[d, :d].mean() for d in range(1, len(a))])),
        [MATRIX, "Transfer of the transposed matrix"],
    ),
    (
        check_transfer,
        lambda a: float(a[np.triu_indices(len(a))].mean()),
        [MATRIX + "your 59.17", "includes the diagonal", "pools all the entries at once"],
    ),
    (check_transfer, lambda a: float(a[-1].mean()), [MATRIX, "the last row (Last)"]),
    (check_transfer, lambda a: float(a.mean()), [MATRIX, "the whole matrix (Avg)"]),
    (check_transfer, lambda a: float(a[0, 1:].mean()), [MATRIX, "the first row only"]),
    (
        check_transfer,
        lambda a: float(np.mean([a[d - 1, d] for d in range(1, len(a))])),
        [MATRIX, "only the entry just above the diagonal"],
    ),
    (check_transfer, lambda a: transfer_right(a) / 100, [MATRIX, "100 times too small"]),
    (
        check_transfer,
        lambda a: float(np.sum([a[:d, d].mean() for d in range(1, len(a))])),
        [MATRIX, "a sum over the tasks"],
    ),
    (
        check_transfer,
        lambda a: float(np.mean([a[:d, d].mean() for d in range(len(a))])),  # column 0: nan
        [MATRIX, "got nan (a mean of no values"],
    ),
    (
        check_transfer,
        lambda a: transfer_right(a) if len(a) == 3 else 3.0,
        [RANDOM, "your 3.00 is not its Transfer: Transfer looks at each task *before*"],
    ),
    (
        check_transfer,
        lambda a: [a[:d, d].mean() for d in range(1, len(a))],
        [MATRIX, "got a list of 2 items (float64)"],
    ),
    # BWT (08)
    (check_bwt, lambda a: -bwt_right(a), [MATRIX + "your 12.50 is not its BWT", "sign"]),
    (
        check_bwt,
        lambda a: float(np.mean([a[-1, d] - a[d, d] for d in range(len(a))])),
        [MATRIX, "includes the last task"],
    ),
    (
        check_bwt,
        lambda a: float(np.mean([a[-1, d] - a[d:-1, d].max() for d in range(len(a) - 1)])),
        [RANDOM, "the best accuracy each task ever had"],
    ),
    (
        check_bwt,
        lambda a: float(np.mean([a[d, -1] - a[d, d] for d in range(len(a) - 1)])),
        [MATRIX, "you read the last column"],
    ),
    (
        check_bwt,
        lambda a: float(np.mean([a[-1, d] - a[0, d] for d in range(len(a) - 1)])),
        [MATRIX, "compared with the first row"],
    ),
    (check_bwt, lambda a: bwt_right(a) * (len(a) - 1), [MATRIX, "a sum over the tasks"]),
    (check_bwt, lambda a: bwt_right(a) / 100, [MATRIX, "100 times too small"]),
    (check_bwt, lambda a: 1.0, [MATRIX, "compare the last row with the diagonal"]),
    # top-k router (03)
    (
        check_top_k_router,
        lambda x, k: router_right(x, k)[::-1],
        ["with k=2: your outputs are the wrong way round: the first looks like gates"],
    ),
    (check_top_k_router, lambda x, k: x.topk(k), ["with k=2: you returned topk's (values, "]),
    (
        check_top_k_router,
        lambda x, k: (x.topk(k)[1], F.softmax(x, -1).topk(k)[0]),
        ["with k=2: row 0: your gates [0.609, 0.224] sum to 0.834 (the softmax over all 4"],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.sort(-1).indices[:, :k], F.softmax(x.sort(-1).values[:, :k], -1)),
        [
            "with k=2: row 0 (logits [2, 0.5, 1, -1]): your index picks experts [1, 3], the "
            "smallest k = 2 logits"
        ],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.argmax(-1), torch.ones(3)),
        ["with k=2: expected index, a 3 x 2 tensor", "shape (3,): one value per row"],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.argmax(-1, keepdim=True), torch.ones(3, 1)),
        ["with k=2: expected index, a 3 x 2 tensor", "(3, 1): one expert per row"],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.topk(k)[1], x.topk(k)[0] / x.topk(k)[0].sum(-1, keepdim=True)),
        [
            "with k=2: row 0: your gates [0.667, 0.333] sum to 1, proportional to the logits",
            "not the softmax of the chosen logits [2, 1]",
        ],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.topk(k)[1], F.softmax(x.topk(k)[0], 0)),
        ["with k=2: your gates sum to 1 down each column"],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.topk(k)[1].sort(-1).values, F.softmax(x.topk(k)[0], -1)),
        ["with k=2: your gates are the right numbers in the wrong places"],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.topk(k)[1].float(), F.softmax(x.topk(k)[0], -1)),
        ["with k=2: expected index", "indices are integers"],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.topk(k)[1], F.softmax(x, -1)),
        ["with k=2: expected gates", "(3, 4): one value for each of the 4 experts"],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.topk(k)[1] + 2, F.softmax(x.topk(k)[0], -1)),
        ["with k=2: row 0: your index holds 4, not an expert"],
    ),
    (
        check_top_k_router,
        lambda x, k: (x.topk(k)[1][:, :1].expand(3, k), F.softmax(x.topk(k)[0], -1)),
        ["with k=2: row 0: your index [0, 0] picks an expert twice"],
    ),
    # distillation (06)
    (
        check_distillation_loss,
        lambda t, s, T: distill_right(t, s, T) / T**2,
        ["at T=2: your 2.4122 is not the loss: it matches the loss with no T² factor"],
    ),
    (check_distillation_loss, kl, ["at T=2: ", "the KL divergence instead of the cross-entropy"]),
    (
        check_distillation_loss,
        lambda t, s, T: kl(t, s, T) / T**2,
        ["at T=2: ", "the KL divergence instead of the cross-entropy", "; no T² factor"],
    ),
    (
        check_distillation_loss,
        lambda t, s, T: distill_right(s, t, T),
        ["at T=2: ", "it matches the loss with teacher and student swapped"],
    ),
    (
        check_distillation_loss,
        lambda t, s, T: -(F.softmax(t / T, -1) * F.log_softmax(s / T, -1)).mean() * T**2,
        ["at T=2: ", "it matches the loss with a mean over the classes too"],
    ),
    (
        check_distillation_loss,
        lambda t, s, T: -(F.softmax(t, -1) * F.log_softmax(s, -1)).sum(-1).mean() * T**2,
        ["at T=2: ", "no temperature: the logits not divided by T"],
    ),
    (
        check_distillation_loss,
        lambda t, s, T: distill_right(t, s, T) * len(t),
        ["at T=2: ", "a sum over the batch instead of a mean"],
    ),
    (
        check_distillation_loss,
        lambda t, s, T: -(F.softmax(t / T, -1) * F.log_softmax(s / T, -1)).sum(-1) * T**2,
        ["at T=2: expected one number", "shape (6,): one value per sample"],
    ),
    (
        check_distillation_loss,
        lambda t, s, T: F.mse_loss(s, t),
        ["at T=2: ", "compare the tempered teacher probabilities"],
    ),
    # DDAS decision (04)
    (
        check_ddas_decision,
        ddas_rule(strict_tie=True),
        [
            "image 3 (task errors [0.3, 0.9], generic 0.3): the generic error ties the best task "
            "error 0.3; a tie goes to the backbone; yours keeps it on its task"
        ],
    ),
    (
        check_ddas_decision,
        ddas_rule(generic=False),
        [
            "image 2 (task errors [0.4, 0.1], generic 0.05): the generic error is below the best",
            "(image 3 too)",
        ],
    ),
    (
        check_ddas_decision,
        ddas_rule(threshold=False),
        [
            "image 1 (task errors [0.6, 0.7], generic 0.8): the best task error 0.6 is above the "
            "threshold 0.5, so it goes to the backbone; yours keeps it on its task"
        ],
    ),
    (
        check_ddas_decision,
        ddas_rule(at_threshold=True),
        [
            "image 5 (task errors [0.7, 0.5], generic 0.9): the best task error 0.5 equals the "
            "threshold 0.5; only an error strictly above it goes to the backbone"
        ],
    ),
    (
        check_ddas_decision,
        lambda e, g, th: (e.argmax(1), ddas_right(e, g, th)[1]),
        [
            "image 0 (task errors [0.2, 0.3]): your task 1 (the highest error) is not the task "
            "with the lowest error"
        ],
    ),
    (
        check_ddas_decision,
        lambda e, g, th: ddas_right(e, g, th)[::-1],
        ["your first output holds booleans: the order is (task, to_backbone)"],
    ),
    (
        check_ddas_decision,
        lambda e, g, th: (
            torch.where(ddas_right(e, g, th)[1], -1, e.argmin(1)),
            ddas_right(e, g, th)[1],
        ),
        ["images 1, 2 and 3 go to the backbone", "for every image, including those sent"],
    ),
    (
        check_ddas_decision,
        lambda e, g, th: (e.argmin(1) + 1, ddas_right(e, g, th)[1]),
        ["your task numbers are one too high"],
    ),
    (
        check_ddas_decision,
        lambda e, g, th: (e.argmin(1), ~ddas_right(e, g, th)[1]),
        ["the opposite of the rule for every image"],
    ),
    (
        check_ddas_decision,
        lambda e, g, th: (e.min(1).values, ddas_right(e, g, th)[1]),
        ["expected task, 6 integer task indices", "indices are integers"],
    ),
    (
        check_ddas_decision,
        lambda e, g, th: (e.argmin(1), g - e.min(1).values),
        ["expected to_backbone, 6 booleans", "holding [0.7, 0.2, -0.05"],
    ),
    # WiSE-FT (02)
    (
        check_wise_ft,
        lambda b, a, alpha: alpha * b + (1 - alpha) * a,
        [
            "at alpha=0.8: yours keeps 20% of the update (after - before) as if alpha weighed "
            "before; alpha = 0.8 keeps 80% of it"
        ],
    ),
    (
        check_wise_ft,
        lambda b, a, alpha: alpha * a,
        ["at alpha=0.8: yours is alpha * after: the 1 - alpha share of before is missing"],
    ),
    (
        check_wise_ft,
        lambda b, a, alpha: b + alpha * a,
        ["at alpha=0.8: yours adds alpha * after to all of before"],
    ),
    (check_wise_ft, lambda b, a, alpha: (a + b) / 2, ["at alpha=0.8: yours keeps 50%"]),
    (check_wise_ft, lambda b, a, alpha: a, ["at alpha=0.8: yours keeps 100%"]),
    (check_wise_ft, lambda b, a, alpha: a + alpha, ["at alpha=0.8: ", "off the straight line"]),
    (
        check_wise_ft,
        lambda b, a, alpha: ((1 - alpha) * b + alpha * a).tolist(),
        ["at alpha=0.8: expected a tensor of shape (3,)", "got a list of 3 items (float)"],
    ),
    # zero-shot (01)
    (
        check_zero_shot,
        lambda x, c: (x @ c.T).argmax(-1),
        ["on image 2 ([1, 1.1]) and image 4: class 0's embedding is 10 times longer"],
    ),
    (
        check_zero_shot,
        lambda x, c: (F.normalize(x, dim=-1) @ c.T).argmax(-1),  # images only: same argmax
        ["on image 2 ([1, 1.1]) and image 4: ", "lengths still count"],
    ),
    (
        check_zero_shot,
        lambda x, c: cos(x, c).argmin(-1),
        ["on image 0 ([1, 0]) and images 1, 2, 3 and 4: you picked the least"],
    ),
    (
        check_zero_shot,
        lambda x, c: (F.normalize(x, dim=0) @ F.normalize(c, dim=0).T).argmax(-1),
        ["on image 2 ([1, 1.1]): you normalised each column (dim 0)"],
    ),
    (
        check_zero_shot,
        lambda x, c: torch.cdist(x, c).argmin(-1),
        ["on image 0 ([1, 0]): that is the nearest class by Euclidean distance"],
    ),
    (check_zero_shot, lambda x, c: cos(x, c).argmax(0), ["shape (3,): one value per class"]),
    (check_zero_shot, lambda x, c: cos(x, c), ["shape (5, 3): one score per image and class"]),
    (
        check_zero_shot,
        lambda x, c: cos(x, c).max(-1).values,
        ["got a float32 tensor of shape (5,): indices are integers"],
    ),
    (check_zero_shot, lambda x, c: cos(x, c).argmax(-1) + 1, ["class 3 does not exist"]),
    # ATLAS alpha (05)
    (
        check_atlas_alpha,
        lambda z, k: F.cosine_similarity(z, k[None], dim=-1),
        ["sample 0, adapter 1: yours is -0.886; your alphas are the cosines themselves"],
    ),
    (
        check_atlas_alpha,
        lambda z, k: torch.softmax(alpha_right(z, k), -1),
        ["sample 1, adapter 1: ", "your alphas sum to 1 over the 3 adapters"],
    ),
    (
        check_atlas_alpha,
        lambda z, k: torch.softmax(F.cosine_similarity(z, k[None], dim=-1), -1),
        ["your alphas sum to 1 over the 3 adapters"],
    ),
    (
        check_atlas_alpha,
        lambda z, k: 1 + F.cosine_similarity(z, k[None], dim=-1),
        ["your alphas are 1 + cos, up to 2"],
    ),
    (
        check_atlas_alpha,
        lambda z, k: (1 - F.cosine_similarity(z, k[None], dim=-1)) / 2,
        ["your alphas fall as z_j turns towards its key"],
    ),
    (
        check_atlas_alpha,
        lambda z, k: (1 + (z * k[None]).sum(-1)) / 2,
        ["your alphas depend on the lengths of z_j and k_j"],
    ),
    (
        check_atlas_alpha,
        lambda z, k: F.cosine_similarity(z, k[None], dim=1),
        ["shape (2, 4): one value per sample and feature"],
    ),
    (
        check_atlas_alpha,
        lambda z, k: (1 + F.normalize(z, dim=-1) @ F.normalize(k, dim=-1).T) / 2,
        ["shape (2, 3, 3): one value per sample for every pair of adapter and key"],
    ),
    (
        check_atlas_alpha,
        lambda z, k: torch.sigmoid(F.cosine_similarity(z, k[None], dim=-1)),
        ["sample 0, adapter 1: yours is 0.292, which is not (1 + cos(z_j, k_j)) / 2"],
    ),
    # linear CKA (07)
    (
        check_linear_cka,
        lambda x, y: cka(x, y, centre=False),
        [
            "on case 2 of 3 (y = random noise): your 0.0524 is not the CKA: it matches CKA with "
            "no centring of the features"
        ],
    ),
    (
        check_linear_cka,
        lambda x, y: float(((y - y.mean(0)).T @ (x - x.mean(0))).norm() ** 2),
        ["on case 1 of 3 (y = x rotated and scaled by 2): ", "no normalisation: that is HSIC"],
    ),
    (
        check_linear_cka,
        lambda x, y: float(((y - y.mean(0)).T @ (x - x.mean(0))).norm()),  # nor squared
        ["on case 1 of 3", "||Yᵀ X|| not squared; no normalisation"],
    ),
    (
        check_linear_cka,
        lambda x, y: cka(x, y) ** 0.5,
        ["on case 2 of 3 (y = random noise): ", "||Yᵀ X|| not squared; sqrt(||Xᵀ X|| ||Yᵀ Y||)"],
    ),
    (
        check_linear_cka,
        lambda x, y: cka(x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True), False),
        ["on case 1 of 3", "each example (row) centred instead of each feature (column)"],
    ),
    (
        check_linear_cka,
        lambda x, y: cka(x, x),
        ["on case 2 of 3 (y = random noise): your 1.0000 is not the CKA: 1 says y is x up to"],
    ),
    (
        check_linear_cka,
        lambda x, y: cka(x, y) / 2,
        ["on case 1 of 3", "compare your formula with ||Yᵀ X||² / (||Xᵀ X|| ||Yᵀ Y||)"],
    ),
    (check_linear_cka, lambda x, y: x, ["on case 1 of 3", "got a float32 tensor of shape (20,"]),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's mean of an empty column
@pytest.mark.parametrize(("check", "answer", "hints"), MISTAKES)
def test_each_known_mistake_gets_its_true_hint(check, answer, hints):
    feedback = check(answer)
    assert not feedback.ok
    for hint in hints:
        assert hint in feedback.message, feedback.message


def test_the_right_answer_in_other_spellings_passes():
    assert check_top_k_router(
        lambda x, k: (x.sort(-1).indices[:, -k:], F.softmax(x.sort(-1).values[:, -k:], -1))
    ).ok  # any order of the chosen experts
    assert check_top_k_router(
        lambda x, k: (
            x.topk(k)[1].int(),
            F.softmax(x, -1).topk(k)[0] / F.softmax(x, -1).topk(k)[0].sum(-1, keepdim=True),
        )
    ).ok
    assert check_distillation_loss(
        lambda t, s, T: F.cross_entropy(s / T, F.softmax(t / T, -1)) * T**2
    ).ok
    assert check_zero_shot(lambda x, c: (x @ F.normalize(c, dim=-1).T).argmax(-1)).ok
    assert check_linear_cka(lambda x, y: torch.tensor([cka(x.float(), y.float())])).ok
    assert check_wise_ft(lambda b, a, alpha: torch.lerp(b, a, alpha)).ok
    assert check_wise_ft(lambda b, a, alpha: wise_ft_right(b, a, alpha).requires_grad_()).ok
    assert check_ddas_decision(
        lambda e, g, th: (e.argmin(1).int(), ddas_right(e, g, th)[1].int())
    ).ok  # 0 and 1 for to_backbone


def _variant_families():
    """Each checker's wrong formulas, evaluated on each of its cases."""
    for name, mistakes in (
        ("transfer", exercises.TRANSFER_MISTAKES),
        ("bwt", exercises.BWT_MISTAKES),
    ):
        yield name, [exercises._evaluate(mistakes, a) for a in exercises.TRANSFER_CASES]
    t, s = exercises._distillation_logits()
    temperatures = exercises.DISTILL_TEMPERATURES
    yield "distillation", [exercises._distillation_variants(t, s, T) for T in temperatures]
    x, ys = exercises._cka_features()
    yield "cka", [exercises._cka_variants(x, y) for y in ys]


@pytest.mark.parametrize(("name", "per_case"), list(_variant_families()))
def test_no_two_known_mistakes_give_the_same_numbers_on_every_case(name, per_case):
    """Otherwise the hint for one would be shown for the other."""
    n = len(per_case[0])
    for i, j in itertools.combinations(range(n), 2):
        if per_case[0][i][1] != per_case[0][j][1]:
            assert not all(
                math.isclose(case[i][0], case[j][0], rel_tol=1e-4) for case in per_case
            ), (per_case[0][i][1], per_case[0][j][1])


# ------------------------------------------------------------------ the rule, above the exercise
RULES = {  # what the markdown cell right above each exercise must say
    "check_zero_shot": ["N x D", "C x D", "not normalised", "highest cosine", "integer"],
    "check_transfer": ["T x T", "above the diagonal", "each task", "one number"],
    "check_wise_ft": ["alpha", "1 - alpha", "same shape"],
    "check_top_k_router": ["N x k", "softmax", "any order", "(index, gates)", "integer"],
    "check_ddas_decision": ["N x T", "tie", "strictly above", "(task, to_backbone)", "every image"],
    "check_atlas_alpha": ["B x J", "(1 + cos(z_j, k_j)) / 2", "not normalised"],
    "check_distillation_loss": [
        "T²",
        "cross-entropy",
        "sum",
        "averaged over the batch",
        "one number",
    ],
    "check_linear_cka": ["n x p", "centr", "||Yᵀ X||²", "one number"],
    "check_bwt": ["T x T", "last row", "diagonal", "but the last", "one number"],
}


def _exercise_cells():
    for path in sorted(NOTEBOOKS.glob("0[1-8]_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        for i, cell in enumerate(cells):
            for name in re.findall(r"^(check_\w+)\(", cell.source, re.MULTILINE):
                if cell.cell_type == "code" and name in RULES:
                    yield name, cells[i - 1]


def test_every_exercise_states_its_rule_right_above_it():
    found = dict(_exercise_cells())
    assert set(found) == set(RULES) == {f"check_{name}" for name in EXERCISES}
    for name, above in found.items():
        assert above.cell_type == "markdown", name
        for words in RULES[name]:
            assert words in above.source, (name, words)
