"""Execute the numbered notebooks and keep the executed copies (small .ipynb and offline HTML)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_core.utils import ensure_async

from clviz.errors import InputError, MissingFileError
from clviz.experiments.compare import FAST_ENV, MODE_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The notebooks called ``names`` (stems, e.g. '00_quickstart'), or all of them in order."""
    available = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not available:
        raise MissingFileError(
            f"no notebooks found in {NOTEBOOK_DIR}; run this from a clone of the clviz repository"
        )
    if not names:
        return available
    by_stem = {p.stem: p for p in available}
    missing = [n for n in names if n not in by_stem]
    if missing:
        raise InputError(f"unknown notebook(s) {', '.join(missing)}; valid: {', '.join(by_stem)}")
    return [by_stem[n] for n in names]


def short_waits(channel: Any, interval: float = 1.0) -> None:
    """Make ``channel.get_msg(timeout=T)`` wait in steps of at most ``interval`` seconds.

    nbclient waits for a cell's reply with one ``get_msg`` over the whole cell time limit. When
    the reply arrives while the client is busy with a burst of output (a widget's messages, say),
    the event loop can miss the socket's wake-up, and the wait then lasts until the limit runs
    out before the reply is read: a notebook that finished in seconds sat for the whole limit
    (30 minutes with nbclient's old default; seen on notebook 07's explorer). Short waits look
    at the socket again every ``interval`` seconds."""
    get_msg = channel.get_msg

    async def get_msg_in_steps(timeout: float | None = None, **kwargs: Any) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = interval if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await ensure_async(get_msg(timeout=min(interval, left), **kwargs))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg_in_steps


def _execute(client: Any, env: dict[str, str]) -> None:
    """Run the client's notebook with ``env`` for the kernel, its replies read in short waits
    (the hook runs once, as soon as the kernel client is ready)."""
    client.on_notebook_start = lambda **_: short_waits(client.kc.shell_channel)
    client.execute(env=env)


def execute_notebook(
    path: Path, out_dir: Path, cell_timeout: int = 900, mode: str | None = None
) -> tuple[Path, Path]:
    """Run ``path`` top to bottom; write a small executed .ipynb and an offline .html beside it
    (atomically; :mod:`clviz.export`). A cell running longer than ``cell_timeout`` seconds
    stops the notebook with an error naming the cell, so a stuck widget can't hang an export.
    ``mode``: ``$CLVIZ_MODE`` for the kernel (fast, class or full; None: this process's)."""
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient

    from clviz.core.io import atomic_path
    from clviz.export import offline_html, small_notebook

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    if mode is not None:
        env[MODE_ENV] = mode
        env.pop(FAST_ENV, None)
    options = {"timeout": cell_timeout, "resources": {"metadata": {"path": str(path.parent)}}}
    try:
        _execute(NotebookClient(nb, **options), env)
    except NoSuchKernel:  # installed without 'make setup': use this interpreter's own kernel
        _execute(NotebookClient(nb, kernel_name="python3", **options), env)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed, page = out_dir / path.name, out_dir / f"{path.stem}.html"
    with atomic_path(executed) as tmp:
        nbformat.write(small_notebook(nb), tmp)
    with atomic_path(page) as tmp:
        tmp.write_text(offline_html(nb), encoding="utf-8")
    return executed, page


def run_notebooks(
    names: list[str] | None, out_dir: Path, mode: str | None = None, cell_timeout: int = 900
) -> list[tuple[Path, Path, float]]:
    """Execute notebooks in order, printing progress; returns (ipynb, html, seconds) for each."""
    done = []
    paths = notebook_paths(names)
    for number, path in enumerate(paths, 1):
        print(f"[{number}/{len(paths)}] executing {path.name} ...", flush=True)
        started = time.perf_counter()
        executed, page = execute_notebook(path, out_dir, cell_timeout, mode)
        done.append((executed, page, time.perf_counter() - started))
        print(f"  wrote {page} ({done[-1][2]:.0f} s)", flush=True)
    return done
