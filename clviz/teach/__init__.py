"""Teaching helpers for the notebooks: take-away checks and exercise checkers.

- :func:`expect` turns a take-away sentence into a check: the notebook prints the sentence from
  the numbers above it and fails (under nbval too) when the numbers say otherwise.
- :mod:`clviz.teach.exercises` checks a student's answer to a "your turn" cell and says what is
  right or wrong without giving the answer away; the solutions live in ``docs/solutions.md``,
  for the teacher to hand out.
"""

from clviz.teach.exercises import (
    EXERCISES,
    Feedback,
    check_atlas_alpha,
    check_bwt,
    check_ddas_decision,
    check_distillation_loss,
    check_linear_cka,
    check_top_k_router,
    check_transfer,
    check_wise_ft,
    check_zero_shot,
)
from clviz.teach.expect import TakeawayError, expect

__all__ = [
    "EXERCISES",
    "Feedback",
    "TakeawayError",
    "check_atlas_alpha",
    "check_bwt",
    "check_ddas_decision",
    "check_distillation_loss",
    "check_linear_cka",
    "check_top_k_router",
    "check_transfer",
    "check_wise_ft",
    "check_zero_shot",
    "expect",
]
