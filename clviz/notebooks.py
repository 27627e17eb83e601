"""Execute the numbered notebooks and keep the executed copies (small .ipynb and offline HTML)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from clviz.experiments.compare import FAST_ENV, MODE_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The notebooks called ``names`` (stems, e.g. '00_quickstart'), or all of them in order."""
    available = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not available:
        raise FileNotFoundError(
            f"no notebooks found in {NOTEBOOK_DIR}; run this from a clone of the clviz repository"
        )
    if not names:
        return available
    by_stem = {p.stem: p for p in available}
    missing = [n for n in names if n not in by_stem]
    if missing:
        raise ValueError(f"unknown notebook(s) {', '.join(missing)}; valid: {', '.join(by_stem)}")
    return [by_stem[n] for n in names]


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
        NotebookClient(nb, **options).execute(env=env)
    except NoSuchKernel:  # installed without 'make setup': use this interpreter's own kernel
        NotebookClient(nb, kernel_name="python3", **options).execute(env=env)
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
