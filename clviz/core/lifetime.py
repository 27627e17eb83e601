"""Child processes that never outlive their parent, and SIGTERM handled like Ctrl-C.

A worker of :mod:`clviz.experiments.workers` trains for minutes and holds its run folder's
lock (:mod:`clviz.core.lock`). If the parent dies without stopping it (SIGKILL, a crash, an
out-of-memory kill), nothing else would: it would finish its run, then wait forever for work,
holding about 1 GB and the locks the next command needs. So each worker, at its start, asks
to die with its parent: on Linux the kernel sends it SIGKILL when the parent ends
(``prctl(PR_SET_PDEATHSIG)``); elsewhere (macOS) a daemon thread looks at the parent's pid
every second and ends the process when the parent is gone.

Linux's signal fires when the *thread* that started the child ends, not the whole process:
start such children from a thread that outlives them (the main thread, or the thread that
waits for them, as :func:`~clviz.experiments.workers.train_in_workers` does).

A killed worker loses only the task it was training: runs checkpoint after every task
(atomically, :func:`clviz.core.io.atomic_path`) and the operating system drops the folder's
lock with the process, so the next command resumes the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from multiprocessing.process import BaseProcess

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 1.0  # how often the watchdog thread (not Linux) looks for the parent
ORPHANED = 1  # the exit status of a child whose parent is gone


def die_with_parent(parent: int) -> None:
    """End this process when its parent (pid ``parent``, passed by the parent itself) ends.

    Linux: the kernel's parent-death signal (SIGKILL). Elsewhere, or where ``prctl`` fails: a
    watchdog thread (:func:`watch_parent`). A parent that died before this call is caught by
    comparing pids right after: the process then exits at once."""
    if not _kernel_kills_orphan():
        watch_parent(parent)
    if os.getppid() != parent:  # died before the request: we belong to init (or a reaper)
        os._exit(ORPHANED)


def _kernel_kills_orphan() -> bool:
    """Ask Linux to SIGKILL this process when its parent thread ends; False elsewhere, or
    when the call fails (then the caller falls back on the watchdog)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter links
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent: int, every: float = POLL_SECONDS) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit``, no cleanup: the parent
    that would want it is gone) once its parent is no longer ``parent``."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(ORPHANED)

    thread = threading.Thread(target=watch, name="clviz-watch-parent", daemon=True)
    thread.start()
    return thread


def _interrupt(signum: int, frame: object) -> None:
    """The SIGTERM handler of :func:`sigterm_as_interrupt`."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`KeyboardInterrupt` in the main thread, as Ctrl-C
    does, so the same cleanup (stopping workers) and the CLI's "interrupted; rerun ..." path
    run. The previous handler comes back after. Outside the main thread (where Python cannot
    set handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def end_processes(processes: Sequence[BaseProcess], grace: float = 2.0) -> None:
    """Stop ``processes`` now: SIGTERM to all first (the fast part, so that a second Ctrl-C
    cannot leave one running), then SIGKILL to any still alive after ``grace`` seconds;
    returns once all are gone (or after another ``grace`` seconds)."""
    for process in processes:
        with contextlib.suppress(ValueError, OSError):  # closed, or gone already
            process.terminate()
    alive = _wait_gone(processes, grace)
    for process in alive:
        with contextlib.suppress(ValueError, OSError):
            process.kill()
    _wait_gone(alive, grace)


def _wait_gone(processes: Sequence[BaseProcess], timeout: float) -> list[BaseProcess]:
    """Wait up to ``timeout`` seconds for ``processes`` to end; those still alive. Waits on
    their sentinels, not ``join``, so it works while another thread reaps them."""
    alive = {}
    for process in processes:
        with contextlib.suppress(ValueError):  # closed or never started: nothing to wait for
            alive[process.sentinel] = process
    deadline = time.monotonic() + timeout
    while alive and (left := deadline - time.monotonic()) > 0:
        for sentinel in multiprocessing.connection.wait(list(alive), left):
            alive.pop(sentinel)
    return list(alive.values())
