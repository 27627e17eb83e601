"""Checkers for the notebooks' "your turn" cells.

Each checker runs the student's function on cases of its own, compares it with the suite's
implementation, and prints :class:`Feedback`: what is right, or the first thing that is wrong,
named by its symptom ("your gates do not sum to 1") rather than by the fix. The common
mistakes each checker recognises are listed in ``docs/solutions.md``, beside the solutions. A
checker never raises for a wrong or unfinished answer, so a notebook with an empty exercise
still runs from top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from clviz.analysis.drift.measures import linear_cka
from clviz.analysis.metrics import bwt, transfer
from clviz.methods.distill import distillation_loss
from clviz.methods.moe.ddas import DDAS


@dataclass
class Feedback:
    """A checker's verdict: ``ok`` and one message for the student."""

    exercise: str
    ok: bool
    message: str

    def __str__(self) -> str:
        mark = "correct" if self.ok else "not yet"
        return f"[{self.exercise}: {mark}] {self.message}"


def _run(exercise: str, fn: Callable, *args) -> tuple[object, Feedback | None]:
    """The student's answer, or the feedback that it could not be computed."""
    try:
        answer = fn(*args)
    except NotImplementedError:
        return None, Feedback(exercise, False, "the function is not written yet")
    except Exception as err:  # the student's code: any error is feedback, not a crash
        return None, Feedback(exercise, False, f"your function raised {type(err).__name__}: {err}")
    if answer is None:
        return None, Feedback(exercise, False, "your function returns None; return the result")
    return answer, None


def _report(feedback: Feedback) -> Feedback:
    print(feedback)
    return feedback


def _close(a, b, tol: float = 1e-4) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=tol))


# ---------------------------------------------------------------------- Transfer (notebook 02)
TRANSFER_CASES = (
    np.array([[80.0, 30.0, 20.0], [70.0, 90.0, 40.0], [60.0, 85.0, 95.0]]),
    np.random.default_rng(0).uniform(0, 100, (5, 5)).round(1),
)


def _pooled_above(a: np.ndarray) -> float:
    return float(a[np.triu_indices(len(a), 1)].mean())


def _with_diagonal(a: np.ndarray) -> float:
    return float(np.mean([a[: d + 1, d].mean() for d in range(1, len(a))]))


def _below(a: np.ndarray) -> float:
    return float(a[np.tril_indices(len(a), -1)].mean())


def _check_matrix_metric(
    name: str,
    fn: Callable[[np.ndarray], float],
    reference: Callable[[np.ndarray], float],
    mistakes: list[tuple[Callable[[np.ndarray], float], str]],
    otherwise: str,
) -> Feedback:
    """Run ``fn`` on :data:`TRANSFER_CASES` against ``reference``; a wrong answer is matched
    with the first of the known ``mistakes`` (a wrong formula and its hint) that it equals."""
    for a in TRANSFER_CASES:
        answer, failed = _run(name, fn, a.copy())
        if failed:
            return _report(failed)
        if _close(answer, reference(a), 1e-6):
            continue
        hint = next((h for wrong, h in mistakes if _close(answer, wrong(a), 1e-6)), otherwise)
        message = f"{float(answer):.2f} on a {len(a)} x {len(a)} matrix is not its {name}: {hint}"
        return _report(Feedback(name, False, message))
    return _report(Feedback(name, True, f"right on {len(TRANSFER_CASES)} matrices"))


def check_transfer(fn: Callable[[np.ndarray], float]) -> Feedback:
    """``fn(matrix)`` must return Transfer of a T x T accuracy matrix (rows: after task t)."""
    mistakes = [
        (
            _pooled_above,
            "you averaged every entry above the diagonal at once; a task with more rows "
            "before it then weighs more. Average each task (column) first, then the tasks",
        ),
        (
            _with_diagonal,
            "your mean includes the diagonal, the accuracy right *after* learning a task",
        ),
        (_below, "you used the entries below the diagonal: that is what is kept, not transfer"),
    ]
    return _check_matrix_metric(
        "Transfer",
        fn,
        transfer,
        mistakes,
        "Transfer looks at each task *before* it is learned: entries above the diagonal",
    )


# ---------------------------------------------------------------------- top-k router (03)
def _reference_top_k(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    top, index = logits.topk(k, dim=-1)
    return index, F.softmax(top, dim=-1)


def check_top_k_router(fn: Callable[[torch.Tensor, int], tuple]) -> Feedback:
    """``fn(logits, k)`` (N x E logits) must return (index N x k of the k largest logits, gates
    N x k: the softmax over those k logits), as MoE-Adapters' router does."""
    name = "top-k router"
    logits = torch.tensor([[2.0, 0.5, 1.0, -1.0], [0.0, 3.0, 2.5, 0.1], [1.0, 1.5, 0.2, 4.0]])
    for k in (2, 1, 3):
        answer, failed = _run(name, fn, logits.clone(), k)
        if failed:
            return _report(failed)
        try:
            index, gates = (torch.as_tensor(x) for x in answer)
        except (TypeError, ValueError):
            return _report(Feedback(name, False, "return two things: (index, gates)"))
        ref_index, ref_gates = _reference_top_k(logits, k)
        if tuple(index.shape) != (3, k) or tuple(gates.shape) != (3, k):
            return _report(
                Feedback(
                    name,
                    False,
                    f"with k={k} both outputs should be 3 x {k}, "
                    f"got {tuple(index.shape)} and {tuple(gates.shape)}",
                )
            )
        if not torch.equal(index.sort(-1).values, ref_index.sort(-1).values):
            return _report(
                Feedback(
                    name,
                    False,
                    f"with k={k} your index does not pick the k largest logits of every row",
                )
            )
        order = index.argsort(-1)  # compare gates expert by expert, in any order
        mine = gates.float().gather(-1, order)
        ref = ref_gates.gather(-1, ref_index.argsort(-1))
        if _close(mine, ref):
            continue
        if not _close(mine.sum(-1), torch.ones(3)):
            hint = "each row of your gates should sum to 1 over the k chosen experts"
        else:
            hint = "the gates should grow with the chosen logits as a softmax does"
        return _report(Feedback(name, False, f"with k={k}: {hint}"))
    return _report(Feedback(name, True, "right for k = 1, 2 and 3"))


# ---------------------------------------------------------------------- distillation (06)
def check_distillation_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]):
    """``fn(teacher_logits, student_logits, T)`` must return the soft-label distillation loss
    used by LwF, ZSCL and MulKI here: the cross-entropy of the student's tempered softmax
    against the teacher's, times ``T**2``, averaged over the batch."""
    name = "distillation loss"
    g = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(6, 5, generator=g) * 3, torch.randn(6, 5, generator=g) * 3
    for temperature in (2.0, 1.0):
        answer, failed = _run(name, fn, teacher.clone(), student.clone(), temperature)
        if failed:
            return _report(failed)
        value, ref = float(answer), float(distillation_loss(teacher, student, temperature))
        if _close(value, ref):
            continue
        p = F.softmax(teacher / temperature, -1)
        entropy = float(-(p * p.log()).sum(-1).mean() * temperature**2)
        swapped = float(distillation_loss(student, teacher, temperature))
        if temperature != 1.0 and _close(value * temperature**2, ref):
            hint = "the value is too small by a factor that depends on T"
        elif _close(value + entropy, ref):
            hint = (
                "that is the KL divergence: the same gradient, but the suite reports the "
                "cross-entropy (KL plus the teacher's entropy)"
            )
        elif _close(value, swapped):
            hint = "teacher and student are the wrong way round: the teacher gives the targets"
        else:
            hint = "compare the tempered teacher probabilities with the student's log-probabilities"
        return _report(Feedback(name, False, f"{value:.4f} at T={temperature:g}: {hint}"))
    return _report(Feedback(name, True, "right at T = 2 and T = 1"))


# ---------------------------------------------------------------------- DDAS decision (04)
def check_ddas_decision(fn: Callable[[torch.Tensor, torch.Tensor, float], tuple]) -> Feedback:
    """``fn(task_errors, generic_errors, threshold)`` (N x T, N, a number) must return (the
    winning task of each image, whether it goes to the backbone), as DDAS decides per image."""
    name = "DDAS decision"
    errors = torch.tensor([[0.2, 0.3], [0.6, 0.7], [0.4, 0.1], [0.3, 0.9], [0.05, 0.2]])
    generic = torch.tensor([0.9, 0.8, 0.05, 0.3, 0.5])
    ddas = DDAS()
    ddas.threshold.fill_(0.5)
    ref = ddas.select_from_errors(errors, generic)
    answer, failed = _run(name, fn, errors.clone(), generic.clone(), 0.5)
    if failed:
        return _report(failed)
    try:
        task, ood = (torch.as_tensor(x) for x in answer)
    except (TypeError, ValueError):
        return _report(Feedback(name, False, "return two things: (task, to_backbone)"))
    if not torch.equal(task.long(), ref.task):
        return _report(
            Feedback(
                name,
                False,
                "the winning task is the one whose autoencoder "
                "reconstructs the image best; yours differs",
            )
        )
    ood = ood.bool()
    if torch.equal(ood, ref.ood):
        return _report(Feedback(name, True, "right on all five images, ties included"))
    wrong = [int(i) for i in torch.nonzero(ood != ref.ood).flatten()]
    if wrong == [3]:
        hint = "image 3 is a tie between the generic autoencoder and task 0: who wins a tie?"
    elif set(wrong) <= {2, 3}:
        hint = (
            "images 2 and 3: an image also goes to the backbone when the generic "
            "autoencoder reconstructs it at least as well"
        )
    elif wrong == [1]:
        hint = "image 1: its best error is above the threshold"
    else:
        hint = f"images {wrong} are sent the wrong way"
    return _report(Feedback(name, False, hint))


# ---------------------------------------------------------------------- WiSE-FT (02)
def check_wise_ft(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> Feedback:
    """``fn(before, after, alpha)`` must return WiSE-FT's weights as ZSCL runs it: ``alpha``
    of the fine-tuned weights ``after`` and ``1 - alpha`` of the weights ``before`` the task."""
    name = "WiSE-FT"
    before, after = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 3.0, 2.0])
    for alpha in (0.8, 0.5, 0.0):
        answer, failed = _run(name, fn, before.clone(), after.clone(), alpha)
        if failed:
            return _report(failed)
        if _close(answer, (1 - alpha) * before + alpha * after):
            continue
        if _close(answer, alpha * before + (1 - alpha) * after):
            hint = "alpha weighs the wrong end: with alpha = 0.8, 80 % of the *update* stays"
        else:
            hint = "the result should lie on the straight line between the two weights"
        return _report(Feedback(name, False, f"at alpha={alpha}: {hint}"))
    return _report(Feedback(name, True, "right at alpha = 0.8, 0.5 and 0"))


# ---------------------------------------------------------------------- zero-shot (01)
def check_zero_shot(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Feedback:
    """``fn(image_embeddings, class_embeddings)`` (N x D, C x D, not normalised) must return
    each image's predicted class: the highest cosine similarity, as CLIP classifies."""
    name = "zero-shot prediction"
    image = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.1], [-1.0, 0.1]])
    classes = torch.tensor([[10.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # class 0 is long
    ref = (F.normalize(image, dim=-1) @ F.normalize(classes, dim=-1).T).argmax(-1)
    answer, failed = _run(name, fn, image.clone(), classes.clone())
    if failed:
        return _report(failed)
    pred = torch.as_tensor(answer).long().flatten()
    if torch.equal(pred, ref):
        return _report(Feedback(name, True, "right on all four images"))
    if torch.equal(pred, (image @ classes.T).argmax(-1)):
        hint = "a long class vector wins too often: compare directions, not lengths"
    elif torch.equal(
        pred, (F.normalize(image, dim=-1) @ F.normalize(classes, dim=-1).T).argmin(-1)
    ):
        hint = "you picked the least similar class"
    else:
        hint = "one prediction per image, the index of a class"
    return _report(Feedback(name, False, hint))


# ---------------------------------------------------------------------- ATLAS alpha (05)
def check_atlas_alpha(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Feedback:
    """``fn(z, keys)`` (B x J x d pooled adapter outputs, J x d keys) must return ATLAS's alpha
    (B x J): ``(1 + cos(z_j, k_j)) / 2``, in [0, 1] and not normalised over the adapters."""
    name = "ATLAS alpha"
    g = torch.Generator().manual_seed(1)
    z, keys = torch.randn(2, 3, 4, generator=g) * 5, torch.randn(3, 4, generator=g)
    cos = F.cosine_similarity(z, keys[None], dim=-1)
    answer, failed = _run(name, fn, z.clone(), keys.clone())
    if failed:
        return _report(failed)
    alpha = torch.as_tensor(answer).float()
    if alpha.shape == cos.shape and _close(alpha, (1 + cos) / 2):
        return _report(Feedback(name, True, "right for 2 samples x 3 adapters"))
    if alpha.shape != cos.shape:
        hint = f"one alpha per sample and adapter: {tuple(cos.shape)}, got {tuple(alpha.shape)}"
    elif _close(alpha, cos):
        hint = "some of your alphas are negative; ATLAS's lie in [0, 1]"
    elif _close(alpha.sum(-1), torch.ones(2)):
        hint = "your alphas sum to 1 over the adapters; ATLAS's are not normalised"
    else:
        hint = "alpha should depend only on the angle between z_j and its key"
    return _report(Feedback(name, False, hint))


# ---------------------------------------------------------------------- linear CKA (07)
def check_linear_cka(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> Feedback:
    """``fn(x, y)`` (n x p, n x q features of the same n examples) must return linear CKA."""
    name = "linear CKA"
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 5, generator=g) + 3.0  # far from centred on purpose
    rotation = torch.linalg.qr(torch.randn(5, 5, generator=g))[0]
    cases = [(x, x @ rotation * 2.0), (x, torch.randn(20, 3, generator=g)), (x, x**2)]
    for a, b in cases:
        answer, failed = _run(name, fn, a.clone(), b.clone())
        if failed:
            return _report(failed)
        if _close(float(answer), linear_cka(a, b), 1e-4):
            continue
        if _close(float(answer), 1.0) and not _close(linear_cka(a, b), 1.0):
            hint = "1 for two different representations: check what you compare"
        else:
            raw = (b.T.double() @ a.double()).norm() ** 2 / (
                (a.T.double() @ a.double()).norm() * (b.T.double() @ b.double()).norm()
            )
            hint = (
                "close to CKA without centring the features first"
                if _close(float(answer), float(raw), 1e-4)
                else "compare your normalisation with HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y))"
            )
        return _report(Feedback(name, False, f"{float(answer):.4f}: {hint}"))
    return _report(Feedback(name, True, "right on a rotation, on noise and on a non-linear map"))


# ---------------------------------------------------------------------- BWT (08)
def _bwt_with_last(a: np.ndarray) -> float:
    return float(np.mean([a[-1, d] - a[d, d] for d in range(len(a))]))


def check_bwt(fn: Callable[[np.ndarray], float]) -> Feedback:
    """``fn(matrix)`` must return backward transfer: over the tasks before the last, the mean
    of (accuracy at the end) minus (accuracy right after learning it)."""
    mistakes = [
        (lambda a: -bwt(a), "the sign is flipped: forgetting makes BWT negative"),
        (_bwt_with_last, "the last task has had no time to be forgotten; leave it out"),
    ]
    return _check_matrix_metric("BWT", fn, bwt, mistakes, "compare the last row with the diagonal")


EXERCISES = {
    "transfer": check_transfer,
    "top_k_router": check_top_k_router,
    "distillation_loss": check_distillation_loss,
    "ddas_decision": check_ddas_decision,
    "wise_ft": check_wise_ft,
    "zero_shot": check_zero_shot,
    "atlas_alpha": check_atlas_alpha,
    "linear_cka": check_linear_cka,
    "bwt": check_bwt,
}
