"""Shared fixtures: the bundled tiny CLIP and small tasks of the embedded world."""

from __future__ import annotations

import pytest
import torch

from clviz.backbone import load_backbone
from clviz.world.tasks import make_task

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny():
    """(model, preprocess, tokenizer) of the bundled tiny CLIP, loaded once per session."""
    return load_backbone()


@pytest.fixture
def tiny_model(tiny):
    """A fresh copy of the tiny CLIP, safe to modify in a test."""
    import copy

    return copy.deepcopy(tiny[0])


@pytest.fixture(scope="session")
def small_task():
    """A small 'shapes' task: 8 classes, 6 train and 4 test images per class."""
    return make_task("shapes", seed=0, train_per_class=6, test_per_class=4)


DRIFT_METHODS = ["zero-shot", "finetune", "moe-adapters-taskid"]


@pytest.fixture(scope="session")
def drift_runs(tmp_path_factory):
    """Three short runs on the smoke stream, with their probe features (shared by the drift,
    widget and report tests)."""
    from clviz.compare import compare

    root = tmp_path_factory.mktemp("runs")
    return compare(DRIFT_METHODS, stream="smoke", steps=8, root=root, progress=False)


@pytest.fixture(scope="session")
def records(drift_runs):
    from clviz.drift import records_of

    return records_of(drift_runs)


@pytest.fixture(scope="session")
def dmap(records, tmp_path_factory):
    from clviz.drift import drift_map

    return drift_map(records, cache_dir=tmp_path_factory.mktemp("umap"))
