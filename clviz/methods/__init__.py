"""Continual-learning methods: one file, one registered class each.

``get_method(name)`` returns a class; ``list_methods()`` names them all, in the order the
notebooks and tables show them (baselines first).
"""

# isort: skip_file
from clviz.methods import zeroshot, finetune, lwf, wiseft, zscl, mulki, moe_adapters, atlas  # noqa: F401
from clviz.methods.base import (
    METHODS,
    Method,
    TrainConfig,
    get_method,
    list_methods,
    make_options,
    register_method,
)

__all__ = [
    "METHODS",
    "Method",
    "TrainConfig",
    "get_method",
    "list_methods",
    "make_options",
    "register_method",
]
