"""A shorthand the tests share."""

from __future__ import annotations

import torch


def predict(method, task, n: int | None = None) -> torch.Tensor:
    """The evaluation logits of ``method`` on the first ``n`` test examples of ``task`` (a
    format)."""
    return method.predictor(task)(task.batch("test", slice(0, n)))
