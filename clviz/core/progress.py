"""Where a run says how far it got, for whoever listens: a worker's parent, a test.

The loop announces each task it starts (:func:`task_started`) and each optimisation step it
takes (:func:`step_taken`); with no listener both cost a context-variable read. A listener
(:func:`listening`) receives :class:`Position` values: which task of how many, which stage,
which step of how many. :mod:`clviz.experiments.workers` listens in every worker and sends the
positions to the parent, which draws one live bar per running method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Position:
    """How far a run got: ``step`` of ``steps`` in ``stage`` of task ``task`` (0-based) of
    ``tasks`` (``task_name``)."""

    task: int
    tasks: int
    task_name: str
    stage: str = ""
    step: int = 0
    steps: int = 0

    @property
    def fraction(self) -> float:
        """Tasks done, counting the current one's steps: 2.5 halfway through the third task."""
        within = self.step / self.steps if self.steps else 0.0
        return self.task + within

    def describe(self) -> str:
        """``task 3/8 letters · step 20/40`` (and the stage when it has a name)."""
        text = f"task {self.task + 1}/{self.tasks} {self.task_name}"
        if self.stage and self.stage != "train":
            text += f" · {self.stage}"
        return text + (f" · step {self.step}/{self.steps}" if self.steps else "")


Listener = Callable[[Position], None]
_listener: ContextVar[Listener | None] = ContextVar("clviz_progress_listener", default=None)
_position: ContextVar[Position | None] = ContextVar("clviz_progress_position", default=None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Within the block, every announced position goes to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


@contextmanager
def following_run() -> Iterator[None]:
    """The block is one run of a stream (:func:`clviz.core.loop.run_stream`): the task it
    announces is forgotten when it ends, so no later lone step is taken for part of it."""
    token = _position.set(None)
    try:
        yield
    finally:
        _position.reset(token)


def task_started(task: int, tasks: int, name: str) -> None:
    """The loop begins task ``task`` (0-based) of ``tasks``."""
    _announce(Position(task, tasks, name))


def step_taken(stage: str, step: int, steps: int) -> None:
    """The loop finished ``step`` (1-based) of the ``steps`` of ``stage`` of the current task;
    a step outside any announced task (a lone :func:`clviz.core.loop.learn_task`) is not sent."""
    where = _position.get()
    if where is not None:
        _announce(replace(where, stage=stage, step=step, steps=steps))


def _announce(position: Position) -> None:
    _position.set(position)
    listener = _listener.get()
    if listener is not None:
        listener(position)
