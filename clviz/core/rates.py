"""The one place a learning rate is decided.

The base rate of a task, in this order:

1. the per-task table :attr:`TrainConfig.task_lr <clviz.core.config.TrainConfig.task_lr>`, where
   it names the task (the references' rates by dataset: the ``mtil`` profile);
2. else the method's own ``lr`` option, where its ``Options`` has one (the adapter methods,
   whose adapters start at zero and train at rates full fine-tuning would not survive);
3. else the run's rate, :attr:`TrainConfig.lr <clviz.core.config.TrainConfig.lr>` (``--lr``).

A parameter group's rate is that base rate times the group's scale (ATLAS's queries in
experience learning: ``query_lr_scale``). Settings that would be silently overruled are an
error naming both (:func:`check_rates`), and every stage's group rates are recorded in its
:class:`~clviz.core.result.StageStats` (``results.json``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from clviz.core.config import TrainConfig
from clviz.errors import InputError


def has_own_rate(options_type: type) -> bool:
    """Whether a method's ``Options`` has an ``lr`` of its own."""
    return any(f.name == "lr" for f in dataclasses.fields(options_type))


def resolve_rate(train: TrainConfig, options: Any, task: str, scale: float = 1.0) -> float:
    """The rate of a parameter group of ``task`` (scaled by ``scale``), in the module's order."""
    table = train.task_lr or {}
    if task in table:
        base = table[task]
    elif has_own_rate(type(options)):
        base = options.lr
    else:
        base = train.lr
    return base * scale


def check_rates(
    method: str, options_type: type, options: Mapping[str, Any], train: TrainConfig
) -> None:
    """Refuse a method's explicit ``lr`` option beside a per-task table, which would overrule
    it on every task the table names (before any work)."""
    if "lr" in options and has_own_rate(options_type) and train.task_lr:
        named = ", ".join(list(train.task_lr)[:3])
        raise InputError(
            f"{method} option lr ({options['lr']:g}) and the per-task rates (training setting "
            f"task_lr, e.g. the mtil profile's reference rates for {named}...) both set the "
            "learning rate, and the table would win: drop the lr option, or "
            "drop the table (clviz run --no-task-lr) to train every task at the option's rate"
        )


def run_rate_ignored(method: str, options_type: type, train: TrainConfig) -> str | None:
    """Why a run's rate given on the command line (``--lr``) would not be used by ``method``,
    or None when it would."""
    if has_own_rate(options_type):
        return (
            f"{method} takes its rate from its own lr option, so --lr {train.lr:g} would be "
            f"ignored: pass --options '{{\"lr\": {train.lr:g}}}' instead"
        )
    if train.task_lr:
        return (
            f"the per-task rates (training setting task_lr) set every rate of {method} here, "
            f"so --lr {train.lr:g} would be ignored: add --no-task-lr to train every task at it"
        )
    return None
