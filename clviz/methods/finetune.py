"""Continual full fine-tuning: train every weight on each task in turn, nothing else."""

from __future__ import annotations

from clviz.methods.base import Method, register_method


@register_method
class FineTune(Method):
    name = "finetune"
    summary = "all weights trained on each task in turn (the forgetting baseline)"
