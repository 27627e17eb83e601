"""Helpers the method tests share: build a registered method on a copy of the tiny CLIP, and
take it through one task of the life cycle."""

from __future__ import annotations

import copy

import torch

from clviz.methods import TrainConfig, get_method, make_options


def make_method(name, tiny, steps=2, **options):
    """Method ``name`` on a deep copy of the tiny CLIP, batch 8, with ``options``."""
    model, _, tokenizer = tiny
    cls = get_method(name)
    return cls(
        copy.deepcopy(model),
        tokenizer,
        TrainConfig(steps=steps, batch_size=8),
        make_options(cls, options),
    )


def learn(method, task, index=0, seed=0):
    """Begin, train (seeded by ``seed``) and finish ``task``; returns the training statistics."""
    method.begin_task(task, index)
    stats = method.train_task(task, index, torch.Generator().manual_seed(seed), progress=False)
    method.finish_task(task, index)
    return stats
