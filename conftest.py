"""Settings for the whole test run (tests/ and the notebooks under nbval), loaded first.

Under pytest-xdist (`make test` runs one worker per core) each worker computes with one thread
and keeps its runs in its own store: two workers training the same run would find its folder
locked (clviz.core.lock). The drawn world stays shared (written atomically). The notebooks'
kernels inherit all three settings.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"
    if os.environ.get("CLVIZ_RESULTS"):
        shared = Path(os.environ["CLVIZ_RESULTS"])
        os.environ.setdefault("CLVIZ_WORLD_CACHE", str(shared / "_cache" / "world"))
        os.environ["CLVIZ_RESULTS"] = str(shared / WORKER)

# Files that take a minute or more: started first, so that no worker is left with one of them
# at the end (pytest-xdist hands out whole files in this order, `--dist loadfile`).
SLOW_FIRST = (
    "test_benchmarks.py",
    "test_faults.py",
    "test_real_path.py",
    "test_finetune.py",
    "test_distributed.py",
)


# nbval waits 5 s for each output message after a cell's reply; on two busy cores a kernel's
# output thread can fall further behind than that after a cell that printed many progress bars.
NOTEBOOK_OUTPUT_TIMEOUT = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first, then the notebooks (each a minute or so), then the rest; the order
    inside a file, which a notebook's cells need, stays. Notebook cells wait longer for their
    output (:data:`NOTEBOOK_OUTPUT_TIMEOUT`)."""
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = NOTEBOOK_OUTPUT_TIMEOUT

    def rank(item: pytest.Item) -> int:
        if item.path.name in SLOW_FIRST:
            return 0
        return 1 if item.path.suffix == ".ipynb" else 2

    items.sort(key=rank)
