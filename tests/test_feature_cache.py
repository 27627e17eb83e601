"""Frozen-feature caching: computed once per batch, bounded, and transparent to results."""

from __future__ import annotations

import torch

from clviz.feature_cache import FeatureCache
from clviz.methods import TrainConfig, get_method, make_options


def test_cache_computes_once_per_distinct_batch_and_evicts_least_recent():
    calls = []

    def compute(x):
        calls.append(x.clone())
        return x.float() * 2

    cache = FeatureCache(compute, max_bytes=2 * 4 * 4)  # room for two 4-float results
    a, b, c = (torch.full((4,), v, dtype=torch.uint8) for v in (1, 2, 3))
    assert torch.equal(cache(a), a.float() * 2)
    cache(a.clone())  # same content, another tensor: a hit
    assert (cache.hits, cache.misses) == (1, 1)
    cache(b)
    cache(c)  # evicts a, the least recently used
    assert len(cache) == 2
    cache(a)
    assert cache.misses == 4 and len(calls) == 4


def test_ddas_features_are_cached_without_changing_predictions(tiny_model, tiny, small_task):
    cls = get_method("moe-adapters")
    method = cls(tiny_model, tiny[2], TrainConfig(steps=2), make_options(cls, {"ddas_steps": 5}))
    g = torch.Generator().manual_seed(0)
    method.begin_task(small_task, 0)
    method.train_task(small_task, 0, g, progress=False)
    method.finish_task(small_task, 0)
    images = small_task.test_images
    first = method.predict(images, small_task)
    hits = method._generic.hits
    again = method.predict(images, small_task)
    assert method._generic.hits == hits + 1
    assert torch.equal(first, again)
    method._generic.clear()
    assert torch.equal(method.predict(images, small_task), first)
