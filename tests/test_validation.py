"""Option ranges live on the options: every numeric field of every method's ``Options`` declares
its range with ``bounded``, and ``check_options`` reads it from the field, never by name."""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from clviz.core import validation
from clviz.core.validation import (
    AT_LEAST_ONE,
    MAX_COUNT,
    NON_NEGATIVE,
    OptionError,
    Range,
    bounded,
    check_options,
)
from clviz.methods import METHODS, get_method, make_options


def _numeric(hint: typing.Any) -> bool:
    """Whether ``hint`` is a number (``int``, ``float``), possibly ``| None``; not ``bool``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_numeric(h) for h in typing.get_args(hint))
    return hint in (int, float)


def _options_types() -> dict[type, str]:
    """Each distinct ``Options`` class of the registered methods, with the first method's name."""
    found: dict[type, str] = {}
    for name, cls in METHODS.items():
        found.setdefault(cls.Options, name)
    return found


def _numeric_fields() -> list[tuple[str, type, dataclasses.Field]]:
    fields = []
    for options, method in _options_types().items():
        hints = typing.get_type_hints(options)
        fields += [
            (method, options, f) for f in dataclasses.fields(options) if _numeric(hints[f.name])
        ]
    return fields


def test_every_numeric_option_declares_its_range():
    fields = _numeric_fields()
    assert len(fields) > 30  # the registry was found, with the paper methods' options
    missing = [
        f"{options.__name__}.{f.name} ({method})"
        for method, options, f in fields
        if not isinstance(f.metadata.get("range"), Range)
    ]
    assert not missing, (
        "numeric options without a declared range (give each one "
        f"`bounded(default, Range(...))` from clviz.core.validation): {', '.join(missing)}"
    )


def test_no_table_of_ranges_by_option_name_remains():
    for name in ("OPTION_RANGES", "COUNT_OPTIONS", "OPTION_RELATIONS"):
        assert not hasattr(validation, name), name


def test_every_default_is_within_its_declared_range():
    for options, method in _options_types().items():
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(options)
            if f.default is not dataclasses.MISSING
        }
        check_options(method, options, defaults)  # raises, naming the option, if not


def test_every_relation_names_a_numeric_field_of_the_same_options():
    relations = 0
    for _, options, f in _numeric_fields():
        other = f.metadata.get("at_most")
        if other is None:
            continue
        relations += 1
        hints = typing.get_type_hints(options)
        assert other in hints and _numeric(hints[other]), f"{options.__name__}.{f.name}"
    assert relations >= 2  # top_k and freeze_per_task <= experts (in both MoE options)


@dataclasses.dataclass
class _Loose:
    size: int = bounded(4, NON_NEGATIVE)
    plain: int = 3  # no range: its type only


@dataclasses.dataclass
class _Strict:
    size: int = bounded(4, AT_LEAST_ONE, count=True)
    most: int = bounded(8, AT_LEAST_ONE)
    part: int = bounded(2, AT_LEAST_ONE, at_most="most")


def test_the_range_is_the_fields_own_not_the_names():
    check_options("loose", _Loose, {"size": 0, "plain": -7})
    with pytest.raises(OptionError, match="strict option size must be >= 1, got 0"):
        check_options("strict", _Strict, {"size": 0})


def test_only_fields_declared_counts_are_capped():
    check_options("loose", _Loose, {"size": MAX_COUNT + 1})
    with pytest.raises(OptionError, match="strict option size must be at most 1,000,000"):
        check_options("strict", _Strict, {"size": MAX_COUNT + 1})


def test_relations_use_the_other_fields_default_when_it_is_not_given():
    check_options("strict", _Strict, {"part": 8})
    with pytest.raises(OptionError, match=r"option part \(9\) must be at most option most \(8\)"):
        check_options("strict", _Strict, {"part": 9})
    with pytest.raises(OptionError, match=r"option part \(2\) must be at most option most \(1\)"):
        check_options("strict", _Strict, {"most": 1})


@pytest.mark.parametrize(
    ("method", "values", "message"),
    [
        ("wise-ft", {"alpha": 1.5}, "wise-ft option alpha must be in [0, 1], got 1.5"),
        ("mulki", {"alpha": -0.1}, "mulki option alpha must be in [0, 1]"),
        ("lwf", {"reference_batch": 0}, "lwf option reference_batch must be >= 1"),
        ("zscl", {"reference_images": 10**9}, "reference_images must be at most 1,000,000"),
        ("replay", {"memory_per_class": 0}, "replay option memory_per_class must be >= 1"),
        ("atlas", {"stage1_steps": -1}, "atlas option stage1_steps must be >= 0"),
        ("moe-adapters", {"ddas_heldout": 1.0}, "ddas_heldout must be in (0, 1)"),
        ("moe-adapters", {"ddas_threshold": -1.0}, "ddas_threshold must be >= 0"),
        ("moe-adapters-taskid", {"freeze_per_task": 17}, "freeze_per_task (17) must be at most"),
        ("moe-adapters", {"top_k": 5, "experts": 4}, "top_k (5) must be at most option experts"),
    ],
)
def test_methods_refuse_options_out_of_their_declared_range(method, values, message):
    with pytest.raises(OptionError) as err:
        make_options(get_method(method), values)
    assert message in str(err.value)


def test_an_open_range_says_so():
    assert str(Range()) == "any number" and Range().contains(-(10**9))
    check_options("moe-adapters", METHODS["moe-adapters"].Options, {"ddas_block": -1})
