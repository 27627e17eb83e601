"""Where a run says how far it got, for whoever listens: a worker's parent, a test.

The loop announces each task it starts (:func:`task_started`) and each optimisation step it
takes (:func:`step_taken`); with no listener both cost a context-variable read. A listener
(:func:`listening`) receives :class:`Position` values: which task of how many, which stage,
which step of how many. :mod:`clviz.experiments.workers` listens in every worker and sends the
positions to the parent, which draws them on its bar; :func:`run_bar` listens in the process
that trains.

Every bar is a text bar (:func:`progress_bar`), in a terminal and in a notebook alike. A widget
bar would make JupyterLab show the kernel *Idle* while a cell trains: JupyterLab (4.4 on) opens
a kernel subshell for the first widget it sees, ipykernel (7 on) reports that request's own
busy and idle, and JupyterLab takes the idle for the kernel's until the next cell starts
(measured with ``benchmarks/notebooks_in_jupyterlab.py``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from tqdm.std import tqdm


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
_listeners: ContextVar[tuple[Listener, ...]] = ContextVar("clviz_progress_listeners", default=())
_position: ContextVar[Position | None] = ContextVar("clviz_progress_position", default=None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Within the block, every announced position also goes to ``listener``."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


def current_position() -> Position | None:
    """Where the run being followed is (None outside :func:`following_run`'s tasks)."""
    return _position.get()


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
    for listener in _listeners.get():
        listener(position)


def throttled(listener: Listener, every: float) -> Listener:
    """``listener``, called at most every ``every`` seconds, and always at a stage's last step
    (so that the end of every stage is seen)."""
    last = float("-inf")

    def call(position: Position) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every or position.step == position.steps:
            last = now
            listener(position)

    return call


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ``get_ipython()`` has a kernel)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return getattr(shell, "kernel", None) is not None


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """A text progress bar: on stdout in a notebook (stderr output is shaded as an error
    there), on stderr elsewhere; never a widget (see the module's docstring)."""
    kwargs.setdefault("file", sys.stdout if in_notebook() else sys.stderr)
    return tqdm(*args, **kwargs)


REFRESH_EVERY = 0.2  # seconds between two redraws of a run's bar (and always a stage's end)
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {elapsed}"


@contextmanager
def run_bar(label: str, tasks: int, done: int = 0, enabled: bool = True) -> Iterator[tqdm]:
    """One bar for a run of ``tasks`` tasks (``done`` finished before), following the
    positions announced inside the block: ``finetune  task 3/8 letters · step 20/40  31%``."""
    bar = progress_bar(total=tasks, initial=done, bar_format=BAR_FORMAT, disable=not enabled)
    bar.set_description_str(label)

    redraw = throttled(lambda _: bar.refresh(), REFRESH_EVERY)

    def follow(position: Position) -> None:  # always current, redrawn at most so often
        bar.n = round(position.fraction, 3)
        bar.set_description_str(f"{label}  {position.describe()}", refresh=False)
        redraw(position)

    try:
        with listening(follow):
            yield bar
    finally:
        bar.close()
