"""The documentation's code runs: the one-file method of docs/add_a_method.md trains."""

from __future__ import annotations

import copy
import re
import sys
import types
from pathlib import Path

import pytest

from clviz.core import TrainConfig, run_stream
from clviz.methods import METHODS, build_method
from clviz.world import get_stream

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def example_method():
    text = (DOCS / "add_a_method.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    module = types.ModuleType("docs_example")  # dataclasses look their module up
    sys.modules[module.__name__] = module
    exec(compile(code, "docs/add_a_method.md", "exec"), module.__dict__)
    yield module.L2SP
    METHODS.pop("l2sp", None)
    del sys.modules[module.__name__]


def test_the_one_file_method_registers_and_learns_a_stream(example_method, tiny):
    assert METHODS["l2sp"] is example_method
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
