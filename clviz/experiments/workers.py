"""Methods trained side by side: one worker process per core, one thread each.

The methods of a comparison are independent runs, so on a CPU with several cores they train at
the same time instead of one after another, each in its own process with one thread (two
threads per process would fight over the same cores). A worker trains its run into the run
store (:func:`clviz.experiments.runs.run`) and hands back nothing but the folder: the parent
reads every finished result from the store afterwards, exactly as a warm run does. Each
worker's output goes to ``<logs>/<method>.log``; the parent prints one line per finished
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
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch
from tqdm.auto import tqdm

from clviz.core.config import RunConfig
from clviz.core.device import resolve_device
from clviz.core.integrity import force_requested, request_force
from clviz.core.lifetime import die_with_parent, end_processes, sigterm_as_interrupt
from clviz.methods import get_method


class WorkerError(RuntimeError):
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


def _train(config: RunConfig, root: str | None, log: str) -> str:
    """In a worker: one thread, output to ``log``, the run trained into the store."""
    torch.set_num_threads(1)
    with open(log, "w", buffering=1) as out:
        os.dup2(out.fileno(), 1)  # C-level output (warnings, tqdm) too
        os.dup2(out.fileno(), 2)
        sys.stdout = sys.stderr = out
        from clviz.experiments.runs import run

        started = time.perf_counter()
        result = run(config, root=root, progress=True)
        print(f"finished in {time.perf_counter() - started:.0f} s: {result.run_dir}", flush=True)
        return str(result.run_dir)


def _init_worker(parent: int, force: bool = False) -> None:
    """A worker's first act: die with the parent (pid ``parent``), and leave Ctrl-C to it
    (the terminal signals the whole group; the parent then stops every worker at once).
    Its progress bars lock with a thread lock, not tqdm's default semaphore, which a killed
    worker would leave to the resource tracker (a "leaked semaphore" warning after exit).
    ``force``: the command was given ``--force``, and so are the worker's runs."""
    request_force(force)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    tqdm.set_lock(threading.RLock())  # one thread per worker: a thread lock is enough


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
    with sigterm_as_interrupt():
        # No max_tasks_per_child: this thread starts every worker, and Linux's parent-death
        # signal follows the thread that started a process (clviz.core.lifetime).
        pool = ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), force_requested()),
        )
        try:
            _train_all(pool, longest_first, workers, logs, root)
        except KeyboardInterrupt:
            _stop(pool)
            raise WorkersInterrupted(
                "rerun the same command to resume: the finished runs are kept in the run "
                f"store, the interrupted ones resume from their last checkpoint (logs: {logs})"
            ) from None
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown()


def _train_all(
    pool: ProcessPoolExecutor,
    configs: Sequence[RunConfig],
    workers: int,
    logs: Path,
    root: str | Path | None,
) -> None:
    """Submit every run to ``pool`` and wait for them, one line per finished method."""
    pending = {}
    for config, name in zip(configs, log_names(configs), strict=True):
        log = logs / name
        future = pool.submit(_train, config, None if root is None else str(root), str(log))
        pending[future] = (config.method, log)
    with tqdm(total=len(pending), desc=f"{workers} workers", unit="run") as bar:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                method, log = pending.pop(future)
                _raise_if_failed(future, method, log, pool)
                bar.update()
                bar.write(f"  [{bar.n}/{bar.total}] {method} done (log: {log})")


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
