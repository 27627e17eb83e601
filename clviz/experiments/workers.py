"""Methods trained side by side: one worker process per core, one thread each.

The methods of a comparison are independent runs, so on a CPU with several cores they train at
the same time instead of one after another, each in its own process with one thread (two
threads per process would fight over the same cores). A worker trains its run into the run
store (:func:`clviz.experiments.runs.run`) and hands back nothing but the folder: the parent
reads every finished result from the store afterwards, exactly as a warm run does. Each
worker's output goes to ``<logs>/<method>.log``; its position (task, stage, step) comes back
to the parent (:mod:`clviz.core.progress`), which draws one live bar per running method, so
a notebook shows every step while the workers train, and prints one line per finished
method. Runs are bit-for-bit deterministic on the CPU at a given thread count, so a worker's
matrix is the one-thread sequential run's (``tests/test_workers.py`` checks it).

The runs start longest first (``Method.relative_cost``), so the last one to finish is a
short one and no core waits long at the end.

A worker that fails, or dies (out of memory, killed), fails the whole call with the method's
name and its log; the runs that finished stay in the store, and the next call trains only
what is missing.

Workers never outlive the parent (:mod:`clviz.core.lifetime`): each dies with it, however it
ends (a SIGKILL too), so no orphan keeps training, or holds a run folder's lock. Ctrl-C,
SIGINT or SIGTERM stops the parent and every worker within a second or two, starts no queued
run, and raises :class:`WorkersInterrupted` (a :class:`KeyboardInterrupt`): the same command
then keeps the finished runs and resumes the interrupted ones from their last checkpoint.
Workers ignore SIGINT themselves, so a Ctrl-C in a terminal (sent to every process of the
group) is handled once, by the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.queues import Queue
from pathlib import Path

import torch
from tqdm.std import tqdm

from clviz.core.config import RunConfig
from clviz.core.device import resolve_device
from clviz.core.integrity import force_requested, request_force
from clviz.core.lifetime import die_with_parent, end_processes, sigterm_as_interrupt
from clviz.core.progress import (
    BAR_FORMAT,
    Listener,
    Position,
    listening,
    progress_bar,
    throttled,
)
from clviz.errors import ClvizError
from clviz.methods import get_method


class WorkerError(ClvizError, RuntimeError):
    """A method's worker failed or died; the message names the method and its log."""


class WorkersInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGINT or SIGTERM stopped the workers; the message says how to resume."""


def default_workers(device: str | None, jobs: int) -> int:
    """Parallel workers for ``jobs`` runs on ``device``: one per core on the CPU (at most one
    per job); one on a GPU or MPS, which the runs would otherwise share."""
    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(jobs, os.cpu_count() or 1))


def log_names(configs: Sequence[RunConfig]) -> list[str]:
    """Each run's log file in the logs folder: ``<method>.log``, with ``-seed<N>`` for a seed
    other than 0, and the run's digest where runs would still share a name (an ablation)."""
    names = [
        config.method + ("" if config.seed == 0 else f"-seed{config.seed}") for config in configs
    ]
    return [
        f"{name}-{config.digest()[:8]}.log" if names.count(name) > 1 else f"{name}.log"
        for name, config in zip(names, configs, strict=True)
    ]


SEND_EVERY = 0.5  # seconds between two positions a worker sends (and always a stage's last)
_positions: Queue | None = None  # in a worker: where its positions go (set by _init_worker)


def _train(config: RunConfig, root: str | None, log: str) -> str:
    """In a worker: one thread, output to ``log``, the run trained into the store, its
    position sent to the parent under the log's name."""
    torch.set_num_threads(1)
    with open(log, "w", buffering=1) as out, listening(_sender(Path(log).stem)):
        os.dup2(out.fileno(), 1)  # C-level output (warnings, tqdm) too
        os.dup2(out.fileno(), 2)
        sys.stdout = sys.stderr = out
        from clviz.experiments.runs import run

        started = time.perf_counter()
        result = run(config, root=root, progress=True)
        print(f"finished in {time.perf_counter() - started:.0f} s: {result.run_dir}", flush=True)
        return str(result.run_dir)


def _sender(label: str) -> Listener:
    """A progress listener that puts ``(label, position)`` on the parent's queue, at most
    every :data:`SEND_EVERY` seconds (and at the end of every stage)."""

    def send(position: Position) -> None:
        if _positions is not None:
            _positions.put((label, position))

    return throttled(send, SEND_EVERY)


def _init_worker(parent: int, force: bool = False, positions: Queue | None = None) -> None:
    """A worker's first act: die with the parent (pid ``parent``), and leave Ctrl-C to it
    (the terminal signals the whole group; the parent then stops every worker at once).
    Its progress bars lock with a thread lock, not tqdm's default semaphore, which a killed
    worker would leave to the resource tracker (a "leaked semaphore" warning after exit).
    ``force``: the command was given ``--force``, and so are the worker's runs;
    ``positions``: where the worker sends how far its run got."""
    global _positions
    request_force(force)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    tqdm.set_lock(threading.RLock())  # one thread per worker: a thread lock is enough
    _positions = positions


def train_in_workers(
    configs: Sequence[RunConfig],
    workers: int,
    logs: str | Path,
    root: str | Path | None = None,
) -> None:
    """Train every config's run (those not finished already) in ``workers`` processes.

    Raises :class:`WorkerError` when a run fails, :class:`WorkersInterrupted` on Ctrl-C,
    SIGINT or SIGTERM (after stopping every worker)."""
    logs = Path(logs)
    logs.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    longest_first = sorted(configs, key=lambda c: -get_method(c.method).relative_cost)
    positions = context.Queue()
    with sigterm_as_interrupt():
        # No max_tasks_per_child: this thread starts every worker, and Linux's parent-death
        # signal follows the thread that started a process (clviz.core.lifetime).
        pool = ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), force_requested(), positions),
        )
        try:
            _train_all(pool, longest_first, workers, logs, root, positions)
        except KeyboardInterrupt:
            _stop(pool)
            raise WorkersInterrupted(
                "rerun the same command to resume: the finished runs are kept in the run "
                f"store, the interrupted ones resume from their last checkpoint (logs: {logs})"
            ) from None
        except BaseException:
            _stop(pool)
            raise
        finally:
            positions.close()
        pool.shutdown()


def _train_all(
    pool: ProcessPoolExecutor,
    configs: Sequence[RunConfig],
    workers: int,
    logs: Path,
    root: str | Path | None,
    positions: Queue,
) -> None:
    """Submit every run to ``pool`` and wait for them: a bar of runs, a live bar per running
    run, and one line per finished method."""
    pending = {}
    for config, name in zip(configs, log_names(configs), strict=True):
        log = logs / name
        future = pool.submit(_train, config, None if root is None else str(root), str(log))
        pending[future] = (config.method, log)
    board = RunBars(len(pending), f"{workers} workers")
    try:
        while pending:
            finished, _ = wait(pending, timeout=SEND_EVERY, return_when=FIRST_COMPLETED)
            board.show(_drain(positions))
            for future in finished:
                method, log = pending.pop(future)
                _raise_if_failed(future, method, log, pool)
                board.finish(log.stem, f"{method} done (log: {log})")
    finally:
        board.close()


def _drain(positions: Queue) -> list[tuple[str, Position]]:
    """Every position waiting in the queue, oldest first."""
    received = []
    while True:
        try:
            received.append(positions.get_nowait())
        except queue.Empty:
            return received


class RunBars:
    """One live line for the runs the workers train: runs done (each running run counting
    its tasks done as a fraction) and where each running run is
    (``lwf task 3/8 letters · step 20/40 | zscl task 1/8 …``). One line, so that it redraws in
    place in a notebook as in a terminal (:func:`clviz.core.progress.progress_bar`)."""

    def __init__(self, runs: int, label: str) -> None:
        self.label, self.done = label, 0
        self.running: dict[str, Position] = {}
        self.bar = progress_bar(total=runs, bar_format=BAR_FORMAT)
        self._draw()

    def show(self, received: Sequence[tuple[str, Position]]) -> None:
        """Draw the newest position of each run in ``received`` (nothing new: no redraw)."""
        if received:
            self.running.update(dict(received))
            self._draw()

    def finish(self, label: str, message: str) -> None:
        """Run ``label`` finished: one line above the bar, and one run more done."""
        self.running.pop(label, None)
        self.done += 1
        self.bar.write(f"  [{self.done}/{self.bar.total}] {message}")  # on stdout, above the bar
        self._draw()

    def close(self) -> None:
        self.bar.close()

    def _draw(self) -> None:
        within = sum(p.fraction / p.tasks for p in self.running.values() if p.tasks)
        self.bar.n = round(self.done + within, 3)
        where = " | ".join(f"{label} {p.describe()}" for label, p in self.running.items())
        runs = f"{self.label}, {self.done}/{self.bar.total} runs done"
        self.bar.set_description_str(f"{runs}" + (f": {where}" if where else ""))


def _stop(pool: ProcessPoolExecutor) -> None:
    """Kill every worker of ``pool`` and cancel the queued runs, so that nothing trains on
    after an interrupt (killed runs resume from their last checkpoint)."""
    processes = list((pool._processes or {}).values())  # no public handle before Python 3.14
    end_processes(processes)  # first: a worker that frees up must not start a queued run
    pool.shutdown(wait=False, cancel_futures=True)


def _raise_if_failed(future: Future, method: str, log: Path, pool: ProcessPoolExecutor) -> None:
    """Stop the pool and raise :class:`WorkerError` naming ``method`` and its log when its
    worker died or its run failed; finished runs stay in the store."""
    try:
        future.result()
    except BrokenProcessPool as err:
        pool.shutdown(cancel_futures=True)
        raise WorkerError(
            f"the worker training {method} died ({err}); its log: {log}. Runs "
            "that finished are kept: rerun the same command to train the rest"
        ) from None
    except Exception as err:
        pool.shutdown(cancel_futures=True)
        raise WorkerError(
            f"{method} failed: {type(err).__name__}: {err}; its log: {log}. Runs "
            "that finished are kept: rerun the same command to train the rest"
        ) from err
