"""Learning-rate schedules of the reference code, as factors of the base rate per step.

- ``constant``: the base rate at every step (the embedded profile: it trains the tiny CLIP
  well in 100 steps, and it is what clviz always used there).
- ``cosine``: ZSCL's and MoE-Adapters' ``utils.cosine_lr``: a linear warm-up
  ``(step + 1) / warmup``, then ``0.5 * (1 + cos(pi * e / es))`` with ``e = step - warmup`` and
  ``es = steps - warmup`` (100 warm-up steps in their scripts, ``--warmup_length``).
- ``linear``: ATLAS's ``get_polynomial_decay_schedule_with_warmup(power=1, lr_end=0)``
  (transformers): ``step / warmup`` during the warm-up (the first step at rate 0, as there),
  then a straight line to 0 at the last step (10% warm-up, ``warmup_ratio: 0.1``).

A factor multiplies every parameter group's own rate (ATLAS's queries at 100x keep their ratio).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from clviz.errors import InputError

SCHEDULES = ("constant", "cosine", "linear")


def warmup_steps(steps: int, warmup_steps: int = 0, warmup_ratio: float = 0.0) -> int:
    """Warm-up steps of a ``steps``-step stage: ``warmup_steps``, else that share of it."""
    return warmup_steps or round(warmup_ratio * steps)


def lr_factor(schedule: str, steps: int, warmup: int) -> Callable[[int], float]:
    """The factor of the base rate at each step ``0 .. steps - 1`` of a stage."""
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "cosine":

        def cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))

        return cosine
    if schedule == "linear":

        def linear(step: int) -> float:
            if step < warmup:
                return step / warmup
            return max(0.0, (steps - step) / (steps - warmup))

        return linear
    raise InputError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
