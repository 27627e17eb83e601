"""Continual full fine-tuning: train every weight on each task in turn, nothing else.

It is the base :class:`~clviz.core.method.Method` as it is: the shared loss, every weight but
the logit scale, and a task's own head where its format has one (matching tasks), so it learns
every task format (the ATLAS protocol's forgetting baseline).
"""

from __future__ import annotations

from clviz.core.method import ClassIncrementalSetting, Method
from clviz.methods.registry import register_method


@register_method
class FineTune(Method):
    name = "finetune"
    listing_order = 1
    class_incremental = ClassIncrementalSetting()
    summary = "all weights trained on each task in turn (the forgetting baseline)"
