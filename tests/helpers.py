"""Shorthands the tests share."""

from __future__ import annotations

import signal

import torch


def predict(method, task, n: int | None = None) -> torch.Tensor:
    """The evaluation logits of ``method`` on the first ``n`` test examples of ``task`` (a
    format)."""
    return method.predictor(task)(task.batch("test", slice(0, n)))


def as_from_a_terminal() -> None:
    """``preexec_fn`` for a child a test will interrupt: Ctrl-C handled as a shell starts a
    command (Python's KeyboardInterrupt), whatever the test process inherited: a child
    inherits an ignored SIGINT, and some code run earlier in a pytest process leaves it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
