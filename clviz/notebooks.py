"""Execute the numbered notebooks and keep the executed copies (and HTML) as outputs."""

from __future__ import annotations

import time
from pathlib import Path

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


def execute_notebook(path: Path, out_dir: Path, timeout: int = 1800) -> tuple[Path, Path]:
    """Run ``path`` top to bottom; write the executed .ipynb and an .html beside it (atomically)."""
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    from clviz.core.io import atomic_path

    nb = nbformat.read(path, as_version=4)
    try:
        NotebookClient(
            nb, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    except NoSuchKernel:  # installed without 'make setup': use this interpreter's own kernel
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    out_dir.mkdir(parents=True, exist_ok=True)
    executed, html = out_dir / path.name, out_dir / f"{path.stem}.html"
    with atomic_path(executed) as tmp:
        nbformat.write(nb, tmp)
    body, _ = HTMLExporter().from_notebook_node(nb)
    with atomic_path(html) as tmp:
        tmp.write_text(body)
    return executed, html


def run_notebooks(names: list[str] | None, out_dir: Path) -> list[tuple[Path, Path, float]]:
    """Execute notebooks in order, printing progress; returns (ipynb, html, seconds) for each."""
    done = []
    for path in notebook_paths(names):
        print(f"executing {path.name} ...", flush=True)
        started = time.perf_counter()
        executed, html = execute_notebook(path, out_dir)
        done.append((executed, html, time.perf_counter() - started))
        print(f"  wrote {html} ({done[-1][2]:.0f} s)", flush=True)
    return done
