"""The documentation's code runs: the one-file method of docs/add_a_method.md trains."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest

import clviz.methods
from clviz.core import TrainConfig, run_stream
from clviz.methods import METHODS, build_method, discover
from clviz.world import get_stream

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def example_method(tmp_path):
    """The document's method saved as ``l2sp.py`` in a folder the methods package searches
    (added to its path for the test only), then found by the registry alone."""
    text = (DOCS / "add_a_method.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (tmp_path / "l2sp.py").write_text(code)
    clviz.methods.__path__.append(str(tmp_path))
    try:
        assert "l2sp" not in METHODS
        discover()
        yield METHODS["l2sp"]
    finally:
        clviz.methods.__path__.remove(str(tmp_path))
        METHODS.pop("l2sp", None)
        sys.modules.pop("clviz.methods.l2sp", None)


def test_the_one_file_method_registers_and_learns_a_stream(example_method, tiny):
    assert example_method.__module__ == "clviz.methods.l2sp" and example_method.name == "l2sp"
    assert list(METHODS)[-1] == "l2sp"  # listed after the built-in methods
    train = TrainConfig(steps=3, batch_size=8)
    method = build_method("l2sp", copy.deepcopy(tiny[0]), tiny[2], train, {"weight": 0.5})
    result = run_stream(method, get_stream("smoke")[:2], progress=False)
    assert result.method == "l2sp" and len(result.matrix) == 2
    assert result.task_stats[0].steps == 3 and result.trainable_params > 0


def test_docs_cite_nothing_outside_the_repository():
    root = DOCS.parent
    for path in [*DOCS.rglob("*.md"), *root.joinpath("clviz").rglob("*.py")]:
        text = path.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, path


def test_the_fidelity_table_names_clviz_files_that_exist():
    """Each row of docs/fidelity.md points at the clviz file that implements the detail; a file
    that moves must take the table with it."""
    table = (DOCS / "fidelity.md").read_text()
    cited = set(re.findall(r"`(clviz/[\w/]+\.py)`", table))
    assert len(cited) >= 10
    missing = [p for p in sorted(cited) if not (DOCS.parent / p).is_file()]
    assert not missing, missing
    rows = [line for line in table.splitlines() if re.match(r"\| \d+[a-c]? \|", line)]
    statuses = ("**same**", "**our reading**")
    assert len(rows) == 16 and all(any(s in r for s in statuses) for r in rows)
