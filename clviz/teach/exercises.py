"""Checkers for the notebooks' "your turn" cells.

Each checker runs the student's function on cases of its own, compares it with the suite's
implementation and returns :class:`Feedback`: what is right, or the first thing that is wrong,
named by the case it failed on ("with k=2, row 1 ...") and by its symptom. A notebook cell ends
with the call, so Jupyter shows the feedback once; a script prints it. The rule each exercise
tests is stated above it in its notebook; the mistakes each checker recognises are listed in
``docs/solutions.md``, beside the solutions.

A checker never raises for a wrong or unfinished answer, so a notebook with an empty exercise
still runs from top to bottom. :func:`_call` runs the student's function, and :func:`_number`,
:func:`_tensor` and :func:`_pair` convert its answer to the kind expected; each stops the check
(:class:`_NotYet`) with a hint that names what was expected and what came back.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from clviz.analysis.drift.measures import linear_cka
from clviz.core.metrics import bwt, transfer
from clviz.methods.distill import distillation_loss
from clviz.methods.moe.ddas import DDAS


@dataclass(repr=False)
class Feedback:
    """A checker's verdict: ``ok`` and one message for the student. Its repr is the same line
    as its str, so Jupyter (the cell's last value), the Python prompt and ``print`` all show
    the one message, once."""

    exercise: str
    ok: bool
    message: str

    def __str__(self) -> str:
        mark = "correct" if self.ok else "not yet"
        return f"[{self.exercise}: {mark}] {self.message}"

    __repr__ = __str__


class _NotYet(Exception):
    """Stops a check: the answer is wrong or unusable; the message is the hint."""


class _Unwritten(_NotYet):
    """Stops a check before any case: the function is not written yet."""


Check = Callable[[Callable], Feedback]


def _checker(exercise: str) -> Callable[[Callable[[Callable], str]], Check]:
    """Turns a check's body (``fn -> str``: the success message, or it raises
    :class:`_NotYet`) into the public checker ``fn -> Feedback`` with the body's name,
    docstring and argument type."""

    def wrap(body: Callable[[Callable], str]) -> Check:
        def check(fn: Callable) -> Feedback:
            try:
                return Feedback(exercise, True, body(fn))
            except _NotYet as wrong:
                return Feedback(exercise, False, str(wrong))

        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(check, attr, getattr(body, attr))
        check.__annotations__ = {**body.__annotations__, "return": "Feedback"}
        return check

    return wrap


@contextmanager
def _case(label: str) -> Iterator[None]:
    """Prefixes the hint of a failure inside the block with the case it failed on."""
    try:
        yield
    except _Unwritten:
        raise
    except _NotYet as wrong:
        raise _NotYet(f"{label}: {wrong}") from None


# ---------------------------------------------------------------------- the student's answer
def _call(fn: Callable, expected: str, *args: object) -> object:
    """``fn(*args)``; a function that is missing, unfinished, raises or returns None stops the
    check with a hint that names what it should return (``expected``)."""
    if not callable(fn):
        raise _NotYet(f"pass your function itself, not its result (got {_describe(fn)})")
    try:
        answer = fn(*args)
    except NotImplementedError:
        raise _Unwritten(f"the function is not written yet; expected {expected}") from None
    except Exception as err:  # the student's code: any error is feedback, not a crash
        text = (str(err).strip().splitlines() or [""])[0][:160]
        raise _NotYet(
            f"your function raised {type(err).__name__}: {text}; expected {expected}"
        ) from None
    if answer is None:
        raise _NotYet(f"expected {expected}; got None: your function returns nothing")
    return answer


def _describe(x: object) -> str:
    """``x`` in a few words, as a student would name it: "a float (0.53)", "a tuple of 3
    items", "a float32 tensor of shape (3, 2)"."""
    if x is None:
        return "None"
    if isinstance(x, bool | np.bool_):
        return f"a bool ({x})"
    if isinstance(x, numbers.Number):
        name = type(x).__name__
        value = f"{x:.4g}" if isinstance(x, float | np.floating) else repr(x)[:20]
        return f"{_a(name)} {name} ({value})"
    if isinstance(x, torch.Tensor):
        dtype = str(x.dtype).removeprefix("torch.")
        return f"{_a(dtype)} {dtype} tensor of shape {tuple(x.shape)}"
    if isinstance(x, np.ndarray):
        return f"a numpy array of shape {x.shape} ({x.dtype})"
    if isinstance(x, str):
        return f"a str ({x[:30]!r})"
    if isinstance(x, tuple) and type(x).__module__ == "torch.return_types":
        return f"torch's {type(x).__name__} result (values, indices)"
    if isinstance(x, tuple | list):
        kinds = ", ".join(sorted({type(item).__name__ for item in x}))
        items = f"{len(x)} item" + ("" if len(x) == 1 else "s")
        return f"a {type(x).__name__} of {items}" + (f" ({kinds})" if kinds else "")
    if isinstance(x, dict):
        return f"a dict (keys {list(x)[:4]})"
    return f"a {type(x).__name__}"


def _a(word: str) -> str:
    return "an" if word.startswith(("a", "e", "i", "o")) else "a"


def _listing(items: list[int], noun: str) -> str:
    """``image 3``, ``images 1, 2 and 3``."""
    if len(items) == 1:
        return f"{noun} {items[0]}"
    return f"{noun}s " + ", ".join(map(str, items[:-1])) + f" and {items[-1]}"


def _as_tensor(x: object) -> torch.Tensor | None:
    """``x`` as a CPU tensor of real numbers or booleans if it is a tensor or a numpy array of
    them; None otherwise. Never raises: it also probes answers of any kind."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            return None
        try:
            return torch.from_numpy(np.ascontiguousarray(x))
        except (TypeError, ValueError):  # a numpy dtype torch does not have
            return None
    if isinstance(x, torch.Tensor) and not x.is_complex():
        return x.detach().cpu()
    return None


def _integral(t: torch.Tensor) -> bool:
    return not (t.is_floating_point() or t.dtype == torch.bool)


def _number(answer: object, expected: str, shapes: dict[tuple, str] | None = None) -> float:
    """``answer`` as one finite float: a Python or numpy number, or a tensor or numpy array
    of one value. ``shapes`` explains the wrong shapes a checker recognises."""
    if isinstance(answer, numbers.Real) and not isinstance(answer, bool):
        value = float(answer)
    else:
        t = _as_tensor(answer)
        if t is None or t.numel() != 1 or t.dtype == torch.bool:
            why = (shapes or {}).get(tuple(t.shape)) if t is not None else None
            raise _NotYet(f"expected {expected}; got {_describe(answer)}" + _colon(why))
        value = float(t.reshape(()).double())
    if math.isnan(value):
        raise _NotYet(f"expected {expected}; got nan (a mean of no values, or 0 / 0, gives nan)")
    if math.isinf(value):
        raise _NotYet(f"expected {expected}; got {value}")
    return value


def _tensor(
    answer: object,
    shape: tuple[int, ...],
    expected: str,
    kind: str = "float",
    shapes: dict[tuple, str] | None = None,
) -> torch.Tensor:
    """``answer`` (a tensor, or a numpy array) as a CPU tensor of ``shape`` holding ``kind``
    values: "float" (finite, returned as float64), "index" (integers) or "bool" (booleans, or
    0 and 1). ``shapes`` explains the wrong shapes a checker recognises."""
    got = _describe(answer)
    t = _as_tensor(answer)
    if t is None:
        raise _NotYet(f"expected {expected}; got {got}")
    if tuple(t.shape) != shape:
        why = (shapes or {}).get(tuple(t.shape))
        raise _NotYet(f"expected {expected}; got {got}" + _colon(why))
    if kind == "index":
        if not _integral(t):
            raise _NotYet(f"expected {expected}; got {got}: indices are integers")
        return t.long()
    if kind == "bool":
        if t.dtype != torch.bool and not ((t == 0) | (t == 1)).all():
            raise _NotYet(f"expected {expected}; got {got} holding {_fmt(t.flatten()[:6])}")
        return t != 0
    if kind == "float":
        t = t.double()
        if not torch.isfinite(t).all():
            raise _NotYet(f"expected {expected}; got {got} holding nan or inf")
    return t


def _pair(answer: object, expected: str) -> tuple[object, object]:
    """The two items of ``answer``, a tuple or list of two."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise _NotYet(f"expected {expected}; got {_describe(answer)}")
    return answer[0], answer[1]


def _colon(why: str | None) -> str:
    return f": {why}" if why else ""


def _fmt(values: object) -> str:
    """Numbers as a student would write them: ``[0.2, 0.3]``, ``[[80, 30], [70, 90]]``."""
    array = np.asarray(values.tolist() if isinstance(values, torch.Tensor) else values)
    if array.ndim == 0:
        return f"{float(array):.3g}"
    return "[" + ", ".join(_fmt(row) for row in array) + "]"


def _close(a: object, b: object, tol: float = 1e-4) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=tol))


def _matching(value: object, variants: list[tuple[object, str]]) -> str:
    """The description of the first variant (a wrong formula's value) that ``value`` equals."""
    return next((text for wrong, text in variants if _close(value, wrong)), "")


# ---------------------------------------------------------------------- numbers on cases
@dataclass
class _Case:
    """One input of a checker whose answer is a number: its label for the hint, the
    arguments, the right value, and the values of the wrong formulas the checker knows, each
    with its hint (the same formulas, in the same order, for every case; computed only for a
    wrong answer)."""

    label: str
    args: tuple
    reference: float
    variants: Callable[[], list[tuple[float, str]]]


def _first_wrong(
    fn: Callable,
    expected: str,
    cases: list[_Case],
    shapes: dict[tuple, str] | None = None,
    tol: float = 1e-4,
) -> tuple[_Case, float, str] | None:
    """Runs ``fn`` on every case; None if it is right on all of them, else the first case it
    gets wrong, its value there and the hint that :func:`_explain` finds."""
    values: list[float | _NotYet] = []
    for case in cases:
        try:
            values.append(_number(_call(fn, expected, *case.args), expected, shapes))
        except _NotYet as wrong:
            values.append(wrong)
    for case, value in zip(cases, values, strict=True):
        if isinstance(value, _Unwritten):
            raise value
        if isinstance(value, _NotYet):
            raise _NotYet(f"{case.label}: {value}")
        if not _close(value, case.reference, tol):
            return case, value, _explain(values, cases)
    return None


def _explain(values: list[float | _NotYet], cases: list[_Case]) -> str:
    """The hint of the first wrong formula that gives the student's values on *every* case
    they answered: one case alone can match a formula by chance."""
    answered = [
        (value, case.variants())
        for value, case in zip(values, cases, strict=True)
        if isinstance(value, float)
    ]
    for k, (_, hint) in enumerate(answered[0][1]):
        if all(math.isclose(value, table[k][0], rel_tol=1e-4) for value, table in answered):
            return hint
    return ""


def _evaluate(
    formulas: list[tuple[Callable[[np.ndarray], float], str]], a: np.ndarray
) -> list[tuple[float, str]]:
    return [(formula(a), hint) for formula, hint in formulas]


# ---------------------------------------------------------------------- Transfer and BWT
TRANSFER_CASES = (
    np.array([[80.0, 30.0, 20.0], [70.0, 90.0, 40.0], [60.0, 85.0, 95.0]]),
    np.random.default_rng(0).uniform(0, 100, (5, 5)).round(1),
)
"""The accuracy matrices :func:`check_transfer` and :func:`check_bwt` try (rows: after task t;
columns: the task evaluated)."""


def _matrix_case(i: int) -> str:
    a, n = TRANSFER_CASES[i], len(TRANSFER_CASES)
    if len(a) <= 3:
        return f"on case {i + 1} of {n}, the {len(a)} x {len(a)} matrix {_fmt(a)}"
    return (
        f"on case {i + 1} of {n}, a random {len(a)} x {len(a)} matrix "
        f"(clviz.teach.exercises.TRANSFER_CASES[{i}])"
    )


def _check_matrix_metric(
    fn: Callable[[np.ndarray], float],
    name: str,
    reference: Callable[[np.ndarray], float],
    mistakes: list[tuple[Callable[[np.ndarray], float], str]],
    otherwise: str,
) -> str:
    """Run ``fn`` on :data:`TRANSFER_CASES` against ``reference``; a wrong answer is explained
    by the known ``mistakes`` (a wrong formula and its hint)."""
    mistakes = [
        *mistakes,
        (
            lambda a: reference(a) / 100,
            f"yours is 100 times too small: the matrix is in percent, so is {name}",
        ),
        (
            lambda a: reference(a) * (len(a) - 1),
            f"that is a sum over the tasks; {name} is their mean",
        ),
    ]
    cases = [
        _Case(_matrix_case(i), (a.copy(),), reference(a), functools.partial(_evaluate, mistakes, a))
        for i, a in enumerate(TRANSFER_CASES)
    ]
    wrong = _first_wrong(fn, f"one number, the {name} of the matrix", cases, tol=1e-6)
    if wrong:
        case, value, hint = wrong
        raise _NotYet(f"{case.label}: your {value:.2f} is not its {name}: {hint or otherwise}")
    return f"right on {len(TRANSFER_CASES)} matrices"


def _column_means(a: np.ndarray, rows: Callable[[int], slice]) -> float:
    """The mean over tasks d >= 1 of the mean of column d over ``rows(d)``."""
    return float(np.mean([a[rows(d), d].mean() for d in range(1, len(a))]))


TRANSFER_MISTAKES: list[tuple[Callable[[np.ndarray], float], str]] = [
    (
        lambda a: float(a[np.triu_indices(len(a), 1)].mean()),
        "you averaged every entry above the diagonal at once; a task with more rows before it "
        "then weighs more. Average each task (column) first, then the tasks",
    ),
    (
        lambda a: _column_means(a, lambda d: slice(0, d + 1)),
        "your mean includes the diagonal, the accuracy right *after* learning a task",
    ),
    (
        lambda a: float(a[np.triu_indices(len(a))].mean()),
        "your mean includes the diagonal, the accuracy right *after* learning a task, and "
        "pools all the entries at once",
    ),
    (
        lambda a: _column_means(a, lambda d: slice(d - 1, d)),
        "you used only the entry just above the diagonal; Transfer averages the whole column "
        "above it, every row before the task is learned",
    ),
    (
        lambda a: float(a[0, 1:].mean()),
        "you used the first row only (after task 0); Transfer uses every row before each task",
    ),
    (
        lambda a: transfer(a.T),
        "that is the Transfer of the transposed matrix: rows are 'after training task t', "
        "columns the task evaluated",
    ),
    (
        lambda a: float(a[np.tril_indices(len(a), -1)].mean()),
        "you used the entries below the diagonal: that is what is kept, not transfer",
    ),
    (lambda a: float(a[-1].mean()), "that is the mean of the last row (Last), not Transfer"),
    (lambda a: float(a.mean()), "that is the mean of the whole matrix (Avg), not Transfer"),
]


@_checker("Transfer")
def check_transfer(fn: Callable[[np.ndarray], float]) -> str:
    """``fn(matrix)`` must return Transfer of a T x T accuracy matrix (rows: after task t): for
    each task d >= 1, the mean of its column above the diagonal; then the mean over tasks."""
    return _check_matrix_metric(
        fn,
        "Transfer",
        transfer,
        TRANSFER_MISTAKES,
        "Transfer looks at each task *before* it is learned: entries above the diagonal",
    )


BWT_MISTAKES: list[tuple[Callable[[np.ndarray], float], str]] = [
    (lambda a: -bwt(a), "the sign is flipped: forgetting makes BWT negative"),
    (
        lambda a: float(np.mean([a[-1, d] - a[d, d] for d in range(len(a))])),
        "your mean includes the last task, which has had no time to be forgotten; leave it out",
    ),
    (
        lambda a: float(np.mean([a[-1, d] - a[d:-1, d].max() for d in range(len(a) - 1)])),
        "you compared with the best accuracy each task ever had (Forgetting's reference); BWT "
        "compares with the accuracy right after learning it, the diagonal",
    ),
    (
        lambda a: float(np.mean([a[d, -1] - a[d, d] for d in range(len(a) - 1)])),
        "you read the last column; the accuracy at the end of the stream is the last row "
        "(rows: after training task t)",
    ),
    (
        lambda a: float(np.mean([a[-1, d] - a[0, d] for d in range(len(a) - 1)])),
        "you compared with the first row (after task 0); 'right after learning it' is the diagonal",
    ),
]


@_checker("BWT")
def check_bwt(fn: Callable[[np.ndarray], float]) -> str:
    """``fn(matrix)`` must return backward transfer: over the tasks before the last, the mean
    of (accuracy at the end, last row) minus (accuracy right after learning it, diagonal)."""
    return _check_matrix_metric(
        fn, "BWT", bwt, BWT_MISTAKES, "compare the last row with the diagonal"
    )


# ---------------------------------------------------------------------- top-k router (03)
ROUTER_LOGITS = torch.tensor([[2.0, 0.5, 1.0, -1.0], [0.0, 3.0, 2.5, 0.1], [1.0, 1.5, 0.2, 4.0]])


@_checker("top-k router")
def check_top_k_router(fn: Callable[[torch.Tensor, int], tuple]) -> str:
    """``fn(logits, k)`` (N x E logits) must return (index, gates): index (N x k, integers)
    names the k experts with the largest logits of each row, in any order, and gates (N x k)
    is the softmax over those k logits, ``gates[i, j]`` belonging to expert ``index[i, j]``,
    as MoE-Adapters' router does without its noise."""
    for k in (2, 1, 3):
        with _case(f"with k={k}"):
            _check_router(fn, ROUTER_LOGITS, k)
    return "right for k = 2, 1 and 3, in any order of the chosen experts"


def _check_router(fn: Callable, logits: torch.Tensor, k: int) -> None:
    n, e = logits.shape
    expected = f"a tuple (index, gates) of two {n} x {k} tensors"
    first, second = _pair(_call(fn, expected, logits.clone(), k), expected)
    _router_order(first, second, logits, k)
    shapes = {
        (n,): f"one value per row; the router keeps k = {k} experts per row, {n} x {k}",
        (n, e): f"one value for each of the {e} experts; keep only the k = {k} chosen",
    }
    if k != 1:
        shapes[(n, 1)] = f"one expert per row; the router keeps k = {k} experts per row"
    index = _tensor(first, (n, k), f"index, a {n} x {k} tensor of integers", "index", shapes)
    gates = _tensor(second, (n, k), f"gates, a {n} x {k} tensor of floats", "float", shapes)
    _router_index(index, logits, k)
    _router_gates(index, gates, logits, k)


def _router_order(first: object, second: object, logits: torch.Tensor, k: int) -> None:
    """Stops the check when the two outputs are swapped: floats first, integers second."""
    a, b = _as_tensor(first), _as_tensor(second)
    if a is None or b is None or not a.is_floating_point() or not _integral(b):
        return
    values = logits.topk(k, dim=-1).values
    if a.shape == values.shape and _close(a, values):
        raise _NotYet(
            "you returned topk's (values, indices): the router returns (index, gates), the "
            "expert indices first, then gates made from those logits"
        )
    if a.shape == (len(logits), k) and _close(a.double().sum(-1), 1.0):
        raise _NotYet(
            "your outputs are the wrong way round: the first looks like gates (each row sums "
            "to 1), the second like expert indices; the order is (index, gates)"
        )
    raise _NotYet(
        "your first output holds floats and your second integers; the order is "
        "(index, gates), the integer indices first"
    )


def _router_index(index: torch.Tensor, logits: torch.Tensor, k: int) -> None:
    """Stops the check at the first row whose index is not the k largest logits."""
    e = logits.shape[1]
    for r, row in enumerate(index.tolist()):
        outside = [i for i in row if not 0 <= i < e]
        if outside:
            raise _NotYet(
                f"row {r}: your index holds {outside[0]}, not an expert: there are {e}, "
                f"0 to {e - 1}"
            )
        if len(set(row)) < k:
            raise _NotYet(f"row {r}: your index {row} picks an expert twice")
        if set(row) == set(logits[r].topk(k).indices.tolist()):
            continue
        smallest = set(logits[r].topk(k, largest=False).indices.tolist())
        which = "the smallest" if set(row) == smallest else "not the largest"
        raise _NotYet(
            f"row {r} (logits {_fmt(logits[r])}): your index picks experts {sorted(row)}, "
            f"{which} k = {k} logits of the row"
        )


def _router_gates(index: torch.Tensor, gates: torch.Tensor, logits: torch.Tensor, k: int) -> None:
    """Stops the check when the gates are not the softmax over the chosen experts' logits."""
    chosen = logits.gather(-1, index.long()).double()
    ref = F.softmax(chosen, dim=-1)
    if _close(gates, ref):
        return
    if _close(gates.sort(-1).values, ref.sort(-1).values):
        raise _NotYet(
            "your gates are the right numbers in the wrong places: gates[i, j] must be the "
            "gate of expert index[i, j]"
        )
    sums = gates.sum(-1)
    if not _close(sums, 1.0):
        if k > 1 and _close(gates.sum(0), 1.0):
            raise _NotYet("your gates sum to 1 down each column, not along each row")
        r = next(r for r in range(len(sums)) if not _close(sums[r], 1.0))
        everything = F.softmax(logits.double(), dim=-1).gather(-1, index.long())
        why = f" (the softmax over all {logits.shape[1]} experts, then the k kept)"
        raise _NotYet(
            f"row {r}: your gates {_fmt(gates[r])} sum to {float(sums[r]):.3g}"
            f"{why if _close(gates, everything) else ''}; each row's gates sum to 1 over "
            "its k chosen experts"
        )
    r = next(r for r in range(len(gates)) if not _close(gates[r], ref[r]))
    raw = chosen / chosen.sum(-1, keepdim=True)
    why = ", proportional to the logits themselves" if _close(gates, raw) else ""
    raise _NotYet(
        f"row {r}: your gates {_fmt(gates[r])} sum to 1{why}, but are not the softmax of the "
        f"chosen logits {_fmt(chosen[r])}"
    )


# ---------------------------------------------------------------------- distillation (06)
DISTILL_TEMPERATURES = (2.0, 1.0)


def _distillation_logits() -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's and the student's logits the checker tries (6 samples, 5 classes)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 5, generator=g) * 3, torch.randn(6, 5, generator=g) * 3


def _distillation_variants(
    teacher: torch.Tensor, student: torch.Tensor, temperature: float
) -> list[tuple[float, str]]:
    """The loss computed with each combination of the usual slips, and their description."""
    n, c = teacher.shape
    measures = (
        ("ce", ""),
        (
            "kl",
            "the KL divergence instead of the cross-entropy (they differ by the teacher's entropy)",
        ),
    )
    scales = ((2, ""), (0, "no T² factor"), (1, "a factor T instead of T²"))
    orders = ((False, ""), (True, "teacher and student swapped (the teacher gives the targets)"))
    reductions = (
        (1 / n, ""),
        (1.0, "a sum over the batch instead of a mean"),
        (1 / (n * c), "a mean over the classes too (the cross-entropy sums over them)"),
    )
    tempered = (
        ((True, True), ""),
        ((False, False), "no temperature: the logits not divided by T"),
        ((True, False), "only the teacher's logits divided by T"),
        ((False, True), "only the student's logits divided by T"),
    )
    totals = {}  # the loss summed over samples and classes, for each way of computing it
    for (measure, _), (swap, _), ((on_t, on_s), _) in itertools.product(measures, orders, tempered):
        t, st = (student, teacher) if swap else (teacher, student)
        log_p = F.log_softmax(t.double() / (temperature if on_t else 1.0), -1)
        log_q = F.log_softmax(st.double() / (temperature if on_s else 1.0), -1)
        per_class = log_p.exp() * (log_p - log_q if measure == "kl" else -log_q)
        totals[measure, swap, on_t, on_s] = float(per_class.sum())
    out = []
    for (measure, m), (power, s), (swap, o), (factor, r), ((on_t, on_s), d) in itertools.product(
        measures, scales, orders, reductions, tempered
    ):
        value = totals[measure, swap, on_t, on_s] * factor * temperature**power
        out.append((value, "; ".join(text for text in (m, s, o, r, d) if text)))
    return out


@_checker("distillation loss")
def check_distillation_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    """``fn(teacher_logits, student_logits, T)`` (two N x C tensors, a number) must return the
    soft-label distillation loss used by LwF, ZSCL and MulKI here: the cross-entropy of the
    student's tempered log-softmax against the teacher's tempered softmax, summed over the
    classes, averaged over the batch, times ``T**2``; one number (a float or a 0-d tensor)."""
    teacher, student = _distillation_logits()
    cases = [
        _Case(
            f"at T={t:g}",
            (teacher.clone(), student.clone(), t),
            float(distillation_loss(teacher, student, t)),
            functools.partial(_distillation_variants, teacher, student, t),
        )
        for t in DISTILL_TEMPERATURES
    ]
    expected = "one number (a float or a 0-d tensor), the loss averaged over the batch"
    shapes = {(6,): "one value per sample", (6, 5): "one value per sample and class"}
    wrong = _first_wrong(fn, expected, cases, shapes)
    if wrong:
        case, value, slips = wrong
        hint = (
            f"it matches the loss with {slips}"
            if slips
            else "compare the tempered teacher probabilities with the student's log-probabilities"
        )
        raise _NotYet(f"{case.label}: your {value:.4f} is not the loss: {hint}")
    return "right at T = 2 and T = 1"


# ---------------------------------------------------------------------- DDAS decision (04)
DDAS_ERRORS = torch.tensor(
    [[0.2, 0.3], [0.6, 0.7], [0.4, 0.1], [0.3, 0.9], [0.05, 0.2], [0.7, 0.5]]
)
DDAS_GENERIC = torch.tensor([0.9, 0.8, 0.05, 0.3, 0.5, 0.9])
DDAS_THRESHOLD = 0.5


@_checker("DDAS decision")
def check_ddas_decision(fn: Callable[[torch.Tensor, torch.Tensor, float], tuple]) -> str:
    """``fn(task_errors, generic_errors, threshold)`` (N x T, N, a number) must return (task,
    to_backbone), two tensors of N values, as DDAS decides per image: task is the index of
    the lowest task error (for every image, also those sent to the backbone); to_backbone is
    True when the generic error is at most that lowest error (a tie goes to the backbone) or
    when the lowest error is strictly above the threshold."""
    errors, generic, threshold = DDAS_ERRORS, DDAS_GENERIC, DDAS_THRESHOLD
    ref = DDAS().select_from_errors(errors, generic, threshold=threshold)
    n = len(errors)
    expected = f"a tuple (task, to_backbone) of two tensors of {n} values, one per image"
    first, second = _pair(_call(fn, expected, errors.clone(), generic.clone(), threshold), expected)
    a, b = _as_tensor(first), _as_tensor(second)
    if a is not None and b is not None and a.dtype == torch.bool and _integral(b):
        raise _NotYet("your first output holds booleans: the order is (task, to_backbone)")
    task = _tensor(first, (n,), f"task, {n} integer task indices", "index")
    to_backbone = _tensor(second, (n,), f"to_backbone, {n} booleans", "bool")
    _ddas_task(task, ref.task, ref.ood, errors)
    _ddas_backbone(to_backbone, ref.ood, errors, generic, threshold)
    return f"right on all {n} images, both ties included"


def _ddas_image(errors: torch.Tensor, generic: torch.Tensor, i: int) -> str:
    return f"image {i} (task errors {_fmt(errors[i])}, generic {_fmt(generic[i])})"


def _ddas_task(
    task: torch.Tensor, ref: torch.Tensor, ood: torch.Tensor, errors: torch.Tensor
) -> None:
    """Stops the check when the winning task of some image is not the lowest task error."""
    if torch.equal(task, ref):
        return
    wrong = [int(i) for i in torch.nonzero(task != ref).flatten()]
    n_tasks = errors.shape[1]
    if all(ood[i] for i in wrong):
        raise _NotYet(
            f"{_listing(wrong, 'image')} go to the backbone, and your task there is not the "
            "task with the lowest error: task names the best task autoencoder for every "
            "image, including those sent to the backbone"
        )
    if torch.equal(task, ref + 1):
        raise _NotYet(
            f"your task numbers are one too high: the {n_tasks} tasks are numbered 0 to "
            f"{n_tasks - 1}"
        )
    i = wrong[0]
    worst = " (the highest error)" if torch.equal(task, errors.argmax(dim=1)) else ""
    raise _NotYet(
        f"image {i} (task errors {_fmt(errors[i])}): your task {int(task[i])}{worst} is not "
        "the task with the lowest error, the autoencoder that reconstructs it best"
    )


def _ddas_reason(errors: torch.Tensor, generic: torch.Tensor, threshold: float, i: int) -> str:
    """Why the rule sends image ``i`` where it does."""
    best, g = float(errors[i].min()), float(generic[i])
    backbone, task = "so it goes to the backbone", "so it stays on its task"
    if g < best:
        return f"the generic error is below the best task error {best:.3g}, {backbone}"
    if g == best:
        return f"the generic error ties the best task error {best:.3g}; a tie goes to the backbone"
    if best > threshold:
        return f"the best task error {best:.3g} is above the threshold {threshold:g}, {backbone}"
    if best == threshold:
        return (
            f"the best task error {best:.3g} equals the threshold {threshold:g}; only an error "
            f"strictly above it goes to the backbone, {task}"
        )
    return f"the best task error is below the generic error and the threshold, {task}"


def _ddas_backbone(
    mine: torch.Tensor,
    ref: torch.Tensor,
    errors: torch.Tensor,
    generic: torch.Tensor,
    threshold: float,
) -> None:
    """Stops the check at the first image sent the wrong way, saying why the rule sends it."""
    if torch.equal(mine, ref):
        return
    if torch.equal(mine, ~ref):
        raise _NotYet(
            "your to_backbone is the opposite of the rule for every image: True "
            "means the image goes to the backbone"
        )
    wrong = [int(i) for i in torch.nonzero(mine != ref).flatten()]
    i = wrong[0]
    yours = "yours sends it to the backbone" if mine[i] else "yours keeps it on its task"
    others = f" ({_listing(wrong[1:], 'image')} too)" if len(wrong) > 1 else ""
    raise _NotYet(
        f"{_ddas_image(errors, generic, i)}: {_ddas_reason(errors, generic, threshold, i)}; "
        f"{yours}{others}"
    )


# ---------------------------------------------------------------------- WiSE-FT (02)
WISE_ALPHAS = (0.8, 0.5, 0.0)


@_checker("WiSE-FT")
def check_wise_ft(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    """``fn(before, after, alpha)`` (two tensors of one shape, a number) must return WiSE-FT's
    weights as ZSCL runs it, a tensor of that shape: ``alpha`` of the fine-tuned weights
    ``after`` plus ``1 - alpha`` of the weights ``before`` the task."""
    before, after = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 3.0, 2.0])
    expected = "a tensor of shape (3,), the mixed weights"
    for alpha in WISE_ALPHAS:
        with _case(f"at alpha={alpha:g}"):
            answer = _call(fn, expected, before.clone(), after.clone(), alpha)
            mixed = _tensor(answer, (3,), expected)
            if not _close(mixed, (1 - alpha) * before + alpha * after):
                raise _NotYet(_wise_ft_hint(mixed, before.double(), after.double(), alpha))
    return "right at alpha = 0.8, 0.5 and 0"


def _wise_ft_hint(
    mixed: torch.Tensor, before: torch.Tensor, after: torch.Tensor, alpha: float
) -> str:
    """What a wrong mix is: a point on the line between the weights, or a known slip."""
    update = after - before
    share = float((mixed - before) @ update / (update @ update))
    if _close(mixed, before + share * update):
        swapped = " as if alpha weighed before" if _close(share, 1 - alpha) else ""
        return (
            f"yours keeps {share:.0%} of the update (after - before){swapped}; "
            f"alpha = {alpha:g} keeps {alpha:.0%} of it"
        )
    slips = [
        (alpha * after, "yours is alpha * after: the 1 - alpha share of before is missing"),
        (before + alpha * after, "yours adds alpha * after to all of before"),
        (alpha * before, "yours is alpha * before: the share of after is missing"),
    ]
    return _matching(mixed, slips) or (
        f"yours, {_fmt(mixed)}, is off the straight line between before and after"
    )


# ---------------------------------------------------------------------- zero-shot (01)
ZERO_SHOT_IMAGES = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.1], [-1.0, 0.1], [0.5, 2.0]])
ZERO_SHOT_CLASSES = torch.tensor([[10.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # class 0 is long


@_checker("zero-shot prediction")
def check_zero_shot(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """``fn(image_embeddings, class_embeddings)`` (N x D, C x D, not normalised) must return
    each image's predicted class, N integers: the class of the highest cosine similarity, as
    CLIP classifies."""
    image, classes = ZERO_SHOT_IMAGES, ZERO_SHOT_CLASSES
    n, c = len(image), len(classes)
    cos = F.normalize(image, dim=-1) @ F.normalize(classes, dim=-1).T
    expected = f"a tensor of {n} integers, one class index per image"
    shapes = {
        (c,): "one value per class, not per image",
        (n, c): "one score per image and class; keep the index of each image's class",
        (n, 1): f"keep one index per image, shape ({n},)",
    }
    answer = _call(fn, expected, image.clone(), classes.clone())
    pred = _tensor(answer, (n,), expected, "index", shapes)
    if torch.equal(pred, cos.argmax(-1)):
        return f"right on all {n} images"
    outside = [int(p) for p in pred if not 0 <= p < c]
    if outside:
        raise _NotYet(f"class {outside[0]} does not exist: there are {c}, 0 to {c - 1}")
    wrong = [int(i) for i in torch.nonzero(pred != cos.argmax(-1)).flatten()]
    where = f"on image {wrong[0]} ({_fmt(image[wrong[0]])})"
    if len(wrong) > 1:
        where += f" and {_listing(wrong[1:], 'image')}"
    raise _NotYet(f"{where}: {_zero_shot_hint(pred, image, classes, cos)}")


def _zero_shot_hint(
    pred: torch.Tensor, image: torch.Tensor, classes: torch.Tensor, cos: torch.Tensor
) -> str:
    """The known slip that gives exactly the student's predictions, if any."""
    columns = F.normalize(image, dim=0) @ F.normalize(classes, dim=0).T
    slips = [
        (
            (image @ classes.T).argmax(-1),
            "class 0's embedding is 10 times longer than the others, and your classes are "
            "those of the dot products: the class embeddings' lengths still count",
        ),
        (cos.argmin(-1), "you picked the least similar class"),
        (
            torch.cdist(image, classes).argmin(-1),
            "that is the nearest class by Euclidean distance, which lengths still sway",
        ),
        (columns.argmax(-1), "you normalised each column (dim 0), not each embedding (row)"),
    ]
    hint = next((text for wrong, text in slips if torch.equal(pred, wrong)), "")
    return hint or "your classes are not those of the highest cosine similarity"


# ---------------------------------------------------------------------- ATLAS alpha (05)
@_checker("ATLAS alpha")
def check_atlas_alpha(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """``fn(z, keys)`` (B x J x d pooled adapter outputs, J x d keys) must return ATLAS's alpha,
    a B x J tensor: ``(1 + cos(z[b, j], keys[j])) / 2``, in [0, 1] and not normalised over
    the adapters."""
    g = torch.Generator().manual_seed(1)
    z, keys = torch.randn(2, 3, 4, generator=g) * 5, torch.randn(3, 4, generator=g)
    b, j, d = z.shape
    expected = f"a {b} x {j} tensor, one alpha per sample and adapter"
    shapes = {
        (b, d): "one value per sample and feature: the cosine runs over the last dimension d",
        (b, j, j): "one value per sample for every pair of adapter and key; z_j meets only its "
        "own key k_j",
        (b, j, 1): f"drop the trailing 1: shape ({b}, {j})",
    }
    answer = _call(fn, expected, z.clone(), keys.clone())
    alpha = _tensor(answer, (b, j), expected, "float", shapes)
    cos = F.cosine_similarity(z.double(), keys.double()[None], dim=-1)
    ref = (1 + cos) / 2
    if _close(alpha, ref):
        return f"right for {b} samples x {j} adapters"
    raise _NotYet(_atlas_hint(alpha, ref, cos, z, keys))


def _atlas_hint(
    alpha: torch.Tensor, ref: torch.Tensor, cos: torch.Tensor, z: torch.Tensor, keys: torch.Tensor
) -> str:
    """The entry farthest from ATLAS's alpha, and what the whole answer matches."""
    s, j = divmod(int((alpha - ref).abs().argmax()), alpha.shape[1])
    where = f"sample {s}, adapter {j}: yours is {float(alpha[s, j]):.3g}"
    dot = (z.double() * keys.double()[None]).sum(-1)
    slips = [
        (cos, "your alphas are the cosines themselves, in [-1, 1]; ATLAS's lie in [0, 1]"),
        (1 + cos, "your alphas are 1 + cos, up to 2: twice ATLAS's"),
        ((1 - cos) / 2, "your alphas fall as z_j turns towards its key; ATLAS's grow with it"),
        (
            (1 + dot) / 2,
            "your alphas depend on the lengths of z_j and k_j (a dot product); a cosine does not",
        ),
    ]
    hint = _matching(alpha, slips)
    if not hint and _close(alpha.sum(-1), 1.0):
        hint = (
            f"your alphas sum to 1 over the {alpha.shape[1]} adapters of each sample; ATLAS's "
            "are not normalised: each depends on its own adapter and key only"
        )
    if hint:
        return f"{where}; {hint}"
    if not 0 <= float(alpha[s, j]) <= 1:
        return f"{where}, outside [0, 1], where (1 + cos) / 2 lies"
    return f"{where}, which is not (1 + cos(z_j, k_j)) / 2 of that sample and adapter"


# ---------------------------------------------------------------------- linear CKA (07)
def _centred(x: torch.Tensor, how: str) -> torch.Tensor:
    if how == "features":
        return x - x.mean(0)
    if how == "examples":
        return x - x.mean(1, keepdim=True)
    return x


def _cka_variants(x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, str]]:
    """Linear CKA computed with each combination of the usual slips, and their description."""
    x, y = x.double(), y.double()
    centring = (
        ("features", ""),
        ("none", "no centring of the features"),
        ("examples", "each example (row) centred instead of each feature (column)"),
    )
    out = []
    for how, c in centring:
        xc, yc = _centred(x, how), _centred(y, how)
        cross, xx, yy = (yc.T @ xc).norm(), (xc.T @ xc).norm(), (yc.T @ yc).norm()
        numerators = ((cross**2, ""), (cross, "||Yᵀ X|| not squared"))
        denominators = (
            (xx * yy, ""),
            ((xx * yy).sqrt(), "sqrt(||Xᵀ X|| ||Yᵀ Y||) as the denominator"),
            (torch.tensor(1.0), "no normalisation: that is HSIC(X, Y), up to a constant"),
            (torch.tensor((len(x) - 1.0) ** 2), "no normalisation: that is HSIC(X, Y)"),
        )
        for (num, n), (den, d) in itertools.product(numerators, denominators):
            out.append((float(num / den), "; ".join(t for t in (c, n, d) if t)))
    return out


CKA_CASES = ("y = x rotated and scaled by 2", "y = random noise", "y = x squared, element-wise")


def _cka_features() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """x and the y of each of :data:`CKA_CASES`; x is far from centred on purpose."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 5, generator=g) + 3.0
    rotation = torch.linalg.qr(torch.randn(5, 5, generator=g))[0]
    return x, (x @ rotation * 2.0, torch.randn(20, 3, generator=g), x**2)


@_checker("linear CKA")
def check_linear_cka(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> str:
    """``fn(x, y)`` (n x p, n x q features of the same n examples) must return linear CKA, one
    number: ``||Yᵀ X||² / (||Xᵀ X|| ||Yᵀ Y||)`` (Frobenius norms) after centring each feature
    (column) of x and y."""
    x, ys = _cka_features()
    cases = [
        _Case(
            f"on case {i + 1} of {len(ys)} ({label})",
            (x.clone(), y.clone()),
            linear_cka(x, y),
            functools.partial(_cka_variants, x, y),
        )
        for i, (label, y) in enumerate(zip(CKA_CASES, ys, strict=True))
    ]
    wrong = _first_wrong(fn, "one number (a float or a 0-d tensor), the CKA of x and y", cases)
    if wrong:
        case, value, slips = wrong
        if slips:
            hint = f"it matches CKA with {slips}"
        elif _close(value, 1.0):
            hint = "1 says y is x up to rotation and scale, which it is not here"
        else:
            hint = "compare your formula with ||Yᵀ X||² / (||Xᵀ X|| ||Yᵀ Y||), centred"
        raise _NotYet(f"{case.label}: your {value:.4f} is not the CKA: {hint}")
    return "right on a rotation, on noise and on a non-linear map"


EXERCISES: dict[str, Check] = {
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
