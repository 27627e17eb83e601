"""Checks of what a user asks for, before any work: a bad value fails in a second, named, not
after a task has trained (or never, as a NaN weight).

Values are checked, never converted: ``"0.5"`` for a float option is an error, not 0.5.

- :func:`check_options`: a method's options against its ``Options`` dataclass, field by field:
  the declared type (``int``, ``float``, ``bool``, ``str``, ``X | None``, tuples and lists),
  finite numbers, and what each field declares with :func:`bounded`, next to its default: its
  range, whether it is a count (at most :data:`MAX_COUNT`), and a relation to another field
  (``at_most="experts"``: ``top_k <= experts``). The checks live here, once; the ranges live
  on the options they bound, so a new option cannot pick up another method's range by sharing
  its name, and every numeric option declares one (``tests/test_validation.py``);
- :func:`check_train`: a :class:`~clviz.core.config.TrainConfig`'s budget, rates and schedule.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clviz.errors import InputError


@dataclass(frozen=True)
class Range:
    """An interval of numbers; ``None`` leaves a side open-ended. ``low_open``/``high_open``
    exclude the bound itself."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def __str__(self) -> str:
        if self.low is None and self.high is None:
            return "any number"
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE = Range(0, low_open=True)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1)
FRACTION = Range(0, 1, low_open=True, high_open=True)

# Declared open on purpose, for a number whose bounds depend on what it is used with (a block
# index, by the backbone's depth): checked where that is known, not here.
UNBOUNDED = Range()


def bounded(default: Any, span: Range, *, count: bool = False, at_most: str | None = None) -> Any:
    """A field of a method's ``Options`` dataclass that declares what :func:`check_options`
    allows: ``default``, within ``span``; ``count``: a count of images, texts or steps, also at
    most :data:`MAX_COUNT`; ``at_most``: the name of another field of the same options that
    this one may not exceed (``top_k = bounded(2, AT_LEAST_ONE, at_most="experts")``)."""
    metadata: dict[str, Any] = {"range": span, "count": count}
    if at_most is not None:
        metadata["at_most"] = at_most
    return dataclasses.field(default=default, metadata=metadata)


class OptionError(InputError):
    """A value of the wrong type or out of range; the message names the setting."""


def _kind(value: Any) -> str:
    return {str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the declared type ``hint`` (without converting it)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # an int is a float without loss (JSON writes 1.0 as 1)
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list):  # JSON gives lists for both
        if not isinstance(value, list | tuple):
            return False
        args = typing.get_args(hint)
        if not args:
            return True
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(
            _matches(v, a) for v, a in zip(value, args, strict=True)
        )
    if origin is dict:
        return isinstance(value, dict)
    return True  # a type this checker does not know: the dataclass's own checks apply


def _type_name(hint: Any) -> str:
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def check_value(label: str, value: Any, hint: Any, span: Range | None = None) -> None:
    """``value`` of the setting ``label`` names (``"wise-ft option alpha"``) is
    of type ``hint``, finite, and within ``span``; otherwise an :class:`OptionError`."""
    if not _matches(value, hint):
        raise OptionError(f"{label} must be {_type_name(hint)}, got {value!r} ({_kind(value)})")
    if not _finite(value):
        raise OptionError(f"{label} must be a finite number, got {value!r}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if span is not None and number and not span.contains(value):
        raise OptionError(f"{label} must be {span}, got {value!r}")


# Counts of images, texts or memory slots (``bounded(..., count=True)``): a larger one is a
# typo, and would allocate for minutes before failing (sizes of adapters are bounded by a
# memory estimate instead).
MAX_COUNT = 1_000_000
MAX_SEED = 2**32 - 1  # seeds are 32-bit, as numpy's and most tools' are


def check_path_option(label: str, name: str, value: Any) -> None:
    """An option that names a folder (``*_folder``) or a file (``*_file``) must name an
    existing one: checked before any work, not when a task first needs it."""
    if not isinstance(value, str):
        return
    from pathlib import Path

    path = Path(value).expanduser()
    if name.endswith("_folder") and not path.is_dir():
        what = "is a file, not a folder" if path.is_file() else "does not exist"
        raise OptionError(f"{label}: {value} {what}; point it at an existing folder of images")
    if name.endswith("_file") and not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise OptionError(f"{label}: {value} {what}; point it at an existing file")


def check_options(method: str, options_type: type, values: Mapping[str, Any]) -> None:
    """The options ``values`` given to ``method`` (names already known to be fields of
    ``options_type``): their types, ranges, relations, and the folders and files they name."""
    hints = typing.get_type_hints(options_type)
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    for name, value in values.items():
        label = f"{method} option {name}"
        meta = fields[name].metadata if name in fields else {}
        check_value(label, value, hints.get(name, Any), meta.get("range"))
        if meta.get("count") and isinstance(value, int) and value > MAX_COUNT:
            raise OptionError(f"{label} must be at most {MAX_COUNT:,}, got {value:,}")
        check_path_option(label, name, value)
    for small, f in fields.items():
        large = f.metadata.get("at_most")
        if large in fields and (small in values or large in values):
            a = values.get(small, _default(fields[small]))
            b = values.get(large, _default(fields[large]))
            if isinstance(a, int) and isinstance(b, int) and a > b:
                raise OptionError(
                    f"{method} option {small} ({a}) must be at most option {large} ({b})"
                )


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


TRAIN_RANGES: dict[str, Range] = {
    "steps": AT_LEAST_ONE,
    "batch_size": AT_LEAST_ONE,
    "lr": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "label_smoothing": Range(0, 1, high_open=True),
    "warmup_steps": NON_NEGATIVE,
    "warmup_ratio": PROBABILITY,
    "eps": POSITIVE,
}


def check_train(train: Any) -> None:
    """A :class:`~clviz.core.config.TrainConfig`: every field of its declared type, finite,
    in range (at least one step per task, positive rates...)."""
    hints = typing.get_type_hints(type(train))
    for f in dataclasses.fields(train):
        value = getattr(train, f.name)
        label = f"training setting {f.name}" + (" (--steps)" if f.name == "steps" else "")
        check_value(label, value, hints.get(f.name, Any), TRAIN_RANGES.get(f.name))
    for i, steps in enumerate(train.task_steps or ()):
        check_value(f"training setting task_steps[{i}]", steps, int, NON_NEGATIVE)
    for task, lr in (train.task_lr or {}).items():
        check_value(f"training setting task_lr[{task!r}]", lr, float, POSITIVE)
    for i, beta in enumerate(train.betas):
        check_value(f"training setting betas[{i}]", beta, float, Range(0, 1, high_open=True))
