"""Continual-learning methods: one registered class each, named by ``get_method(name)``.

``list_methods()`` names them all, in the order the notebooks and tables show them (baselines
first). The contract every method fulfils is :class:`~clviz.methods.base.Method`; the paper
methods keep their building blocks beside them (:mod:`~clviz.methods.moe`,
:mod:`~clviz.methods.atlas`, :mod:`~clviz.methods.mulki`); what several methods share is said
once: adapter sites (:mod:`~clviz.methods.sites`), distillation
(:mod:`~clviz.methods.distill`) and weight-space averaging (:mod:`~clviz.methods.weights`).
"""

# isort: skip_file
from clviz.methods import zeroshot, finetune, lwf, wiseft, zscl, replay  # noqa: F401
from clviz.methods import mulki, moe, atlas  # noqa: F401
from clviz.methods.base import (
    METHODS,
    Method,
    Stage,
    TaskState,
    build_method,
    get_method,
    list_methods,
    make_options,
    register_method,
)

__all__ = [
    "METHODS",
    "Method",
    "Stage",
    "TaskState",
    "build_method",
    "get_method",
    "list_methods",
    "make_options",
    "register_method",
]
