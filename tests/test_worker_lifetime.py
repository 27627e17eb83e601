"""Workers of ``clviz main`` never outlive it: SIGKILL of the parent takes them down with it;
SIGINT or SIGTERM to the parent alone stops every worker within seconds, starts no queued run
and exits 130 through the CLI's interrupted path. Workers ignore SIGINT (a terminal's Ctrl-C
reaches them too, and the parent handles it once).

Each case runs the real ``clviz main`` (cli.main -> main_job -> train_in_workers) in its own
session, with the training replaced by a stand-in that marks its start and sleeps: two
workers, three runs, so one run waits in the queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil  # installed with ipykernel (jupyterlab)
import pytest
from helpers import as_from_a_terminal

REPO = Path(__file__).resolve().parents[1]
LIFETIME = REPO / "clviz" / "core" / "lifetime.py"
GONE_WITHIN = 5.0  # seconds from the signal until every worker is gone
STARTUP = 60.0  # seconds for the parent and two workers to start on two busy cores

PARENT = '''
"""``clviz`` whose training sleeps: each run writes its pid to ``<log>.started``."""
import os
import sys
import time
from pathlib import Path


def sleeping_train(config, root, log):
    Path(log).with_suffix(".started").write_text(str(os.getpid()))
    time.sleep(120)
    return log


import clviz.experiments.workers as workers  # at the top: the workers load this file too

workers._train = sleeping_train

if __name__ == "__main__":
    from clviz.cli import main

    sys.exit(main(sys.argv[1:]))
'''


def _start_main(tmp_path: Path) -> tuple[subprocess.Popen, list[psutil.Process], Path]:
    """``clviz main`` with three sleeping runs on two workers, in a new session; returns once
    two runs started, with the parent, its descendants and the logs folder."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    logs = tmp_path / "out" / "logs"
    env = {**os.environ, "CLVIZ_RESULTS": str(tmp_path / "runs"), "CLVIZ_DEVICE": "cpu"}
    args = ["main", "--fast", "--methods", "finetune", "--seeds", "0", "1", "2"]
    args += ["--workers", "2", "--out", str(tmp_path / "out")]
    with open(tmp_path / "parent.out", "w") as out:
        parent = subprocess.Popen(
            [sys.executable, str(script), *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=as_from_a_terminal,
        )
    deadline = time.monotonic() + STARTUP
    while len(started := list(logs.glob("*.started"))) < 2:
        if parent.poll() is not None or time.monotonic() > deadline:
            parent.kill()
            pytest.fail(f"no two runs started:\n{(tmp_path / 'parent.out').read_text()}")
        time.sleep(0.1)
    time.sleep(0.2)  # let the marker's pid be written
    descendants = psutil.Process(parent.pid).children(recursive=True)
    assert {int(p.read_text()) for p in started} <= {p.pid for p in descendants}
    return parent, descendants, logs


def _gone(process: psutil.Process) -> bool:
    """Whether ``process`` ended (a zombie waiting for a reaper counts as ended)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _seconds_until_gone(processes: list[psutil.Process], since: float) -> float:
    """Seconds from ``since`` until every process ended; fails after :data:`GONE_WITHIN`."""
    while not all(_gone(p) for p in processes):
        if time.monotonic() - since > GONE_WITHIN:
            alive = [p.pid for p in processes if not _gone(p)]
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"processes {alive} still alive {GONE_WITHIN} s after the signal")
        time.sleep(0.05)
    return time.monotonic() - since


def test_sigkill_of_the_parent_takes_every_worker_with_it(tmp_path):
    parent, descendants, _ = _start_main(tmp_path)
    sent = time.monotonic()
    parent.kill()
    parent.wait(5)
    _seconds_until_gone(descendants, sent)


def _alive(pids: set[int]) -> bool:
    """Whether every process of ``pids`` still runs."""
    try:
        return not any(_gone(psutil.Process(pid)) for pid in pids)
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_every_worker_and_starts_no_queued_run(tmp_path, sig):
    parent, descendants, logs = _start_main(tmp_path)
    if sig == signal.SIGINT:  # as a terminal's Ctrl-C would: the workers ignore it
        workers = {int(p.read_text()) for p in logs.glob("*.started")}
        for pid in workers:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert _alive(workers)
    sent = time.monotonic()
    os.kill(parent.pid, sig)  # the parent alone
    try:
        code = parent.wait(GONE_WITHIN + 5)
    except subprocess.TimeoutExpired:
        parent.kill()
        raise
    _seconds_until_gone(descendants, sent)
    output = (tmp_path / "parent.out").read_text()
    assert code == 130, output
    assert "clviz main: interrupted; rerun the same command" in output
    assert "Traceback" not in output
    assert "leaked semaphore" not in output
    assert sorted(p.name for p in logs.glob("*.started")) == [
        "finetune-seed1.started",
        "finetune.started",
    ]  # the queued seed-2 run never started


def _run_lifetime(code: str, timeout: float = 10) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with ``lifetime`` loaded from its file (no torch)."""
    load = textwrap.dedent(f"""
        import importlib.util, os, subprocess, sys, time
        spec = importlib.util.spec_from_file_location("lifetime", {str(LIFETIME)!r})
        lifetime = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lifetime)
    """)
    return subprocess.run(
        [sys.executable, "-c", load + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_watchdog_thread_ends_an_orphan_within_its_poll():
    """The fallback of systems without prctl (macOS): a middle process starts a child that
    watches it, then dies; the child is gone within about a second."""
    child = (
        "import importlib.util, os, time;"
        f"spec = importlib.util.spec_from_file_location('lifetime', {str(LIFETIME)!r});"
        "lifetime = importlib.util.module_from_spec(spec); spec.loader.exec_module(lifetime);"
        "lifetime.watch_parent(os.getppid(), every=0.2); print('watching', flush=True);"
        "time.sleep(60)"
    )
    done = _run_lifetime(f"""
        child = subprocess.Popen([sys.executable, "-c", {child!r}], stdout=subprocess.PIPE)
        child.stdout.readline()
        print(child.pid, flush=True)
        os._exit(0)  # the middle process dies; its child becomes an orphan
    """)
    orphan = psutil.Process(int(done.stdout.split()[0]))
    _seconds_until_gone([orphan], time.monotonic())


def test_a_child_whose_parent_died_before_asking_exits_at_once():
    done = _run_lifetime("""
        lifetime.die_with_parent(os.getppid() + 999999)  # not our parent: it "died" already
        print("still running")
    """)
    assert done.returncode == 1
    assert "still running" not in done.stdout
