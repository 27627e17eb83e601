"""Continual-learning methods: one registered class each, named by ``get_method(name)``.

``list_methods()`` names them all, in the order the notebooks and tables show them (baselines
first). The contract every method fulfils is :class:`~clviz.core.method.Method`; every module
here that defines a ``@register_method`` class is found by :func:`~clviz.methods.registry.discover`
(a new method is one new file). The paper methods keep their building blocks beside them
(:mod:`~clviz.methods.moe`, :mod:`~clviz.methods.atlas`, :mod:`~clviz.methods.mulki`); what
several methods share is said once: adapter sites (:mod:`~clviz.methods.sites`), distillation
(:mod:`~clviz.methods.distill`) and weight-space averaging (:mod:`~clviz.methods.weights`).
"""

from clviz.methods.registry import (
    METHODS,
    build_method,
    discover,
    get_method,
    list_methods,
    make_options,
    register_method,
)

discover()

__all__ = [
    "METHODS",
    "build_method",
    "discover",
    "get_method",
    "list_methods",
    "make_options",
    "register_method",
]
