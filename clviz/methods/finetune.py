"""Continual full fine-tuning: train every weight on each task in turn, nothing else.

It is the base :class:`~clviz.methods.base.Method` as it is: the shared loss, every weight but
the logit scale, and a task's own head where its format has one (matching tasks), so it learns
every task format (the ATLAS protocol's forgetting baseline).
"""

from __future__ import annotations

from clviz.methods.base import Method, register_method


@register_method
class FineTune(Method):
    name = "finetune"
    summary = "all weights trained on each task in turn (the forgetting baseline)"
