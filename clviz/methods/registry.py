"""The registry of methods: every module of :mod:`clviz.methods` that defines a
``@register_method`` class is found and imported, so adding a method is adding one file.
:func:`build_method` builds one, its options checked and the reference data it declares loaded.

The contract a method fulfils is :class:`clviz.core.method.Method`.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

from torch import nn

from clviz.backbone import image_normalization
from clviz.core.config import TrainConfig
from clviz.core.method import Method
from clviz.core.validation import check_options
from clviz.data.reference import load_reference
from clviz.errors import InputError

METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name or cls.name in METHODS:
        raise InputError(f"method name {cls.name!r} is empty or already registered")
    METHODS[cls.name] = cls
    return cls


def discover() -> None:
    """Import every module of :mod:`clviz.methods` (their ``@register_method`` classes register
    themselves), then order :data:`METHODS` by each class's ``listing_order``: baselines first,
    then the papers' methods, as the notebooks and tables show them."""
    import clviz.methods as package

    for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        importlib.import_module(module.name)
    ordered = sorted(METHODS.values(), key=lambda cls: cls.listing_order)
    METHODS.clear()
    METHODS.update((cls.name, cls) for cls in ordered)


def list_methods() -> list[str]:
    """Every registered method's name, in listing order."""
    return list(METHODS)


def get_method(name: str) -> type[Method]:
    """The method class called ``name``; the error lists the valid names."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def make_options(cls: type[Method], values: dict[str, Any] | None) -> Any:
    """Build ``cls.Options`` from a dict; unknown keys raise with the valid ones listed, and
    values of the wrong type or out of range name their option
    (:func:`~clviz.core.validation.check_options`)."""
    values = dict(values or {})
    valid = {f.name for f in dataclasses.fields(cls.Options)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise InputError(
            f"unknown option(s) {', '.join(unknown)} for method {cls.name!r}; "
            f"valid options: {', '.join(sorted(valid)) or 'none'}"
        )
    check_options(cls.name, cls.Options, values)
    return cls.Options(**values)


def build_method(
    name: str,
    model: nn.Module,
    tokenizer,
    train: TrainConfig | None = None,
    options: dict[str, Any] | None = None,
) -> Method:
    """The registered method ``name`` on ``model``, with ``options`` checked by name, and the
    reference data it declares (:meth:`~clviz.core.method.Method.reference_spec`) loaded for
    it: a method never reads data itself."""
    cls = get_method(name)
    checked = make_options(cls, options)
    spec = cls.reference_spec(checked)
    reference = None if spec is None else load_reference(spec, image_normalization(model)[2])
    return cls(model, tokenizer, train, checked, reference)
