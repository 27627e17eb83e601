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
