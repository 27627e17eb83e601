"""Shared fixtures: the bundled tiny CLIP, small tasks of the embedded world, methods on copies
of the tiny CLIP, three short runs whose probe features the drift tests share, and Chromium."""

from __future__ import annotations

import copy
import os
import signal

import pytest
import torch

from clviz.backbone import load_backbone
from clviz.browser import find_chromium
from clviz.core.config import TrainConfig
from clviz.core.formats import make_format
from clviz.methods import build_method
from clviz.world.tasks import make_task

torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


def _signals_changed() -> list[str]:
    """SIGINT/SIGTERM handled other than as Python starts (both are inherited by a child)."""
    wrong = []
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        wrong.append(f"SIGINT handler {signal.getsignal(signal.SIGINT)}")
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        wrong.append(f"SIGTERM handler {signal.getsignal(signal.SIGTERM)}")
    return wrong


@pytest.fixture(autouse=True)
def signals_left_as_found(request):
    """No test may leave SIGINT or SIGTERM handled differently: a child process inherits an
    ignored SIGINT. Before each test the handlers are put back as Python starts them (something
    outside the tests, run in the same pytest process, can leave SIGINT ignored; the tests
    that interrupt a child start it with ``helpers.as_from_a_terminal`` as well)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    changed = _signals_changed()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert not changed, f"{request.node.nodeid} left {'; '.join(changed)}"


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has ended (the writer of a killed write's temporary file)."""
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="session")
def tiny():
    """(model, preprocess, tokenizer) of the bundled tiny CLIP, loaded once per session."""
    return load_backbone()


@pytest.fixture
def tiny_model(tiny):
    """A fresh copy of the tiny CLIP, safe to modify in a test."""
    return copy.deepcopy(tiny[0])


@pytest.fixture(scope="session")
def small_task():
    """A small 'shapes' task: 8 classes, 6 train and 4 test images per class."""
    return make_task("shapes", seed=0, train_per_class=6, test_per_class=4)


@pytest.fixture
def make_method(tiny):
    """``make_method(name, steps=2, **options)``: a registered method on a copy of the tiny
    CLIP, batch 8."""

    def make(name: str, steps: int = 2, **options):
        model, _, tokenizer = tiny
        train = TrainConfig(steps=steps, batch_size=8)
        return build_method(name, copy.deepcopy(model), tokenizer, train, options)

    return make


@pytest.fixture
def fmt(tiny):
    """``fmt(task)``: a task in its format, with the tiny CLIP's tokenizer."""
    return lambda task: make_format(task, tiny[2])


DRIFT_METHODS = ["zero-shot", "finetune", "moe-adapters-taskid"]


@pytest.fixture(scope="session")
def drift_runs(tmp_path_factory):
    """Three short runs on the smoke stream, with their probe features (shared by the drift,
    widget and report tests)."""
    from clviz.experiments.compare import compare

    root = tmp_path_factory.mktemp("runs")
    return compare(DRIFT_METHODS, stream="smoke", steps=8, root=root, progress=False)


@pytest.fixture(scope="session")
def records(drift_runs):
    from clviz.analysis.drift import records_of

    return records_of(drift_runs)


@pytest.fixture(scope="session")
def dmap(records, tmp_path_factory):
    from clviz.analysis.drift import drift_map

    return drift_map(records, cache_dir=tmp_path_factory.mktemp("umap"))


@pytest.fixture
def chromium() -> str:
    """The Chromium executable. CI must run the browser tests (``make test`` installs Debian's
    chromium there), so without one they fail under ``CI`` and skip, with the fix, elsewhere."""
    path = find_chromium()
    if path is None:
        message = "no Chromium on PATH; on Debian: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must run the browser tests; `make test` installs it)")
        pytest.skip(message)
    return path
