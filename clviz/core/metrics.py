"""Continual-learning metrics of an accuracy matrix, as defined for MTIL by ZSCL.

``A[t][d]`` is the accuracy (percent) on task ``d`` after training task ``t``: T x T, row t is
the evaluation after the t-th task, and there is no zero-shot row.

- **Transfer**: for every task ``d >= 1`` the mean of ``A[t][d]`` over ``t < d`` (the entries
  above the diagonal: how well a task is solved *before* it is learned), then the mean over
  those T-1 tasks. It measures how much zero-shot ability survives.
- **Avg**: the mean of all T x T entries.
- **Last**: the mean of the last row (everything, at the end).
- **BWT** (backward transfer): the mean over ``d < T-1`` of ``A[T-1][d] - A[d][d]``.
- **Forgetting**: the mean over ``d < T-1`` of ``max_{d <= t < T-1} A[t][d] - A[T-1][d]``: the
  drop from the best accuracy a task had *after it was learned*. (Chaudhry et al. take the max
  over every earlier row; with zero-shot entries above the diagonal we count only rows after
  learning, so that a task is not "forgotten" for having been easier before it was trained.)
- **Drop since learned** (per task, ATLAS's "upstream forgetting"): ``A[d][d] - A[T-1][d]``, how
  far a task fell from right after it was learned to the end of the stream.

Class-incremental learning (ZSCL, MoE-Adapters) evaluates one growing label space after each
step, so its matrix has one column: **Avg** is the mean over the steps, **Last** the final step.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from clviz.errors import InputError


class MatrixError(InputError):
    """A malformed accuracy matrix; the message names the offending row."""


def as_matrix(rows: object) -> np.ndarray:
    """Validate a square matrix of numbers given as a list of rows."""
    if not isinstance(rows, list | tuple) or not rows:
        raise MatrixError("the accuracy matrix must be a non-empty list of rows")
    n = len(rows)
    out = np.empty((n, n), dtype=np.float64)
    for i, row in enumerate(rows):
        if not isinstance(row, list | tuple):
            raise MatrixError(f"row {i + 1} is not a list of numbers: {row!r}")
        if len(row) != n:
            raise MatrixError(
                f"row {i + 1} has {len(row)} entries but the matrix has {n} rows: "
                "an accuracy matrix is square (T x T), row t = after training task t"
            )
        for j, value in enumerate(row):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise MatrixError(
                    f"row {i + 1}, column {j + 1}: {value!r} is not a number"
                ) from None
            if not np.isfinite(number):
                raise MatrixError(f"row {i + 1}, column {j + 1}: {value!r} is not a finite number")
            out[i, j] = number
    return out


def check_accuracies(m: np.ndarray, source: str = "the matrix") -> np.ndarray:
    """``m``, checked to be at least 2 x 2 (Transfer, BWT and forgetting compare tasks) and
    to hold percentages (every entry in [0, 100])."""
    if len(m) < 2:
        raise MatrixError(
            f"{source} is {len(m)} x {len(m)}: Transfer, BWT and forgetting need at least two "
            "tasks (a 2 x 2 matrix or larger)"
        )
    bad = np.argwhere((m < 0) | (m > 100))
    if len(bad):
        i, j = bad[0]
        raise MatrixError(
            f"{source}, row {i + 1}, column {j + 1}: {m[i, j]:g} is not an accuracy in percent "
            "(every entry must be in [0, 100])"
        )
    return m


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def parse_csv(text: str) -> list[list[str]]:
    """The rows of a CSV matrix, as Excel writes one too: ``,`` or ``;`` between cells (with
    ``;``, a decimal comma is read as a point), an optional header row (a first row with no
    number in it), blank lines and trailing empty cells ignored."""
    lines = [line for line in text.splitlines() if line.strip()]
    delimiter = ";" if lines and lines[0].count(";") > 0 else ","
    rows = []
    for row in csv.reader(lines, delimiter=delimiter):
        cells = [cell.strip() for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        if delimiter == ";":
            cells = [cell.replace(",", ".") for cell in cells]
        rows.append(cells)
    if rows and not any(_number(cell) for cell in rows[0]):
        rows = rows[1:]  # a header row: task names, or "after task 1"...
    return rows


def load_matrix(path: str | Path) -> np.ndarray:
    """Read an accuracy matrix (percent, at least 2 x 2) from CSV (one row per line; Excel's
    files too, see :func:`parse_csv`) or JSON (a list of rows or an object with an
    ``accuracy_matrix`` key, such as a clviz results.json)."""
    path = Path(path)
    if not path.is_file():
        raise MatrixError(f"no such file: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # Excel starts its UTF-8 CSVs with a BOM
    except UnicodeDecodeError:
        raise MatrixError(
            f"{path} is not a text file (UTF-8 CSV or JSON); save the matrix as CSV or JSON"
        ) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise MatrixError(f"{path} is not valid JSON: {err}") from None
        if isinstance(data, dict):
            if "accuracy_matrix" not in data:
                raise MatrixError(f"{path} has no 'accuracy_matrix' key (keys: {', '.join(data)})")
            data = data["accuracy_matrix"]
        return check_accuracies(_named(path, data), str(path))
    return check_accuracies(_named(path, parse_csv(text)), str(path))


def _named(path: Path, rows: object) -> np.ndarray:
    """:func:`as_matrix`, its error naming the file."""
    try:
        return as_matrix(rows)
    except MatrixError as err:
        raise MatrixError(f"{path}: {err}") from None


@dataclass(frozen=True)
class Summary:
    """The headline numbers of one run (percent; BWT is usually negative)."""

    transfer: float
    avg: float
    last: float
    bwt: float
    forgetting: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def transfer(a: np.ndarray) -> float:
    """Mean over tasks d >= 1 of the mean of the column above the diagonal."""
    a = np.asarray(a)
    if len(a) < 2:
        return float("nan")
    return float(np.mean([a[:d, d].mean() for d in range(1, len(a))]))


def avg(a: np.ndarray) -> float:
    return float(np.mean(a))


def last(a: np.ndarray) -> float:
    return float(np.mean(np.asarray(a)[-1]))


def bwt(a: np.ndarray) -> float:
    a = np.asarray(a)
    if len(a) < 2:
        return float("nan")
    return float(np.mean([a[-1, d] - a[d, d] for d in range(len(a) - 1)]))


def forgetting(a: np.ndarray) -> float:
    a = np.asarray(a)
    if len(a) < 2:
        return float("nan")
    return float(np.mean([a[d:-1, d].max() - a[-1, d] for d in range(len(a) - 1)]))


def per_task_forgetting(a: np.ndarray) -> list[float]:
    """Forgetting of each task but the last (see the module docstring)."""
    a = np.asarray(a)
    return [float(a[d:-1, d].max() - a[-1, d]) for d in range(len(a) - 1)]


def summarize(a: np.ndarray | list) -> Summary:
    """Transfer, Avg, Last, BWT and forgetting of a T x T accuracy matrix."""
    m = as_matrix(np.asarray(a).tolist())
    return Summary(transfer(m), avg(m), last(m), bwt(m), forgetting(m))


def drop_since_learned(a: np.ndarray | list) -> list[float]:
    """Per task: accuracy right after learning it minus accuracy after the whole stream."""
    a = np.asarray(a)
    return [float(a[d, d] - a[-1, d]) for d in range(len(a))]


@dataclass(frozen=True)
class ClassIncrementalSummary:
    """Avg and Last of the accuracies over all classes seen so far, one per step."""

    avg: float
    last: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


PROTOCOLS = ("task-incremental", "class-incremental")


def metrics_for(protocol: str, matrix: np.ndarray | list) -> Summary | ClassIncrementalSummary:
    """The headline numbers of ``protocol``: :func:`summarize` for task-incremental matrices,
    Avg and Last of the single column for class-incremental ones."""
    if protocol == "task-incremental":
        return summarize(matrix)
    if protocol == "class-incremental":
        column = np.asarray(matrix, dtype=np.float64)[:, 0]
        return ClassIncrementalSummary(float(np.mean(column)), float(column[-1]))
    raise InputError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


def task_curves(a: np.ndarray) -> np.ndarray:
    """Accuracy of each task across the stream: column d of the matrix, as row d."""
    return np.asarray(a).T.copy()
