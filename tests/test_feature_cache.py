"""Frozen-feature caching: computed once per batch, bounded, and transparent to results."""

from __future__ import annotations

import torch
from helpers import predict

from clviz.core import learn_task
from clviz.methods.feature_cache import FeatureCache, ImageCache


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


def test_ddas_features_are_cached_without_changing_predictions(make_method, small_task, fmt):
    method = make_method("moe-adapters", ddas_steps=5)
    task = fmt(small_task)
    learn_task(method, task, 0, seed=0, progress=False)
    first = predict(method, task)
    hits = method.generic_features.hits
    again = predict(method, task)
    assert method.generic_features.hits == hits + 1
    assert torch.equal(first, again)
    method.generic_features.clear()
    assert torch.equal(predict(method, task), first)


def test_image_cache_embeds_each_distinct_image_once():
    seen = []

    def embed(images):
        seen.append(len(images))
        return images.float().mean(dim=(1, 2, 3))[:, None] * torch.ones(1, 4)

    images = torch.randint(0, 255, (5, 3, 4, 4), dtype=torch.uint8)
    cache = ImageCache(embed, max_items=4)
    batch = images[torch.tensor([0, 1, 1, 2])]  # image 1 twice in one batch
    torch.testing.assert_close(cache(batch), embed(batch))
    assert seen[0] == 3 and (cache.misses, cache.hits) == (3, 1)
    again = images[torch.tensor([2, 0, 3])]  # only image 3 is new
    torch.testing.assert_close(cache(again), embed(again))
    assert seen[2] == 1 and len(cache) == 4
    cache(images[torch.tensor([4])])  # a fifth image: the oldest row is dropped
    assert len(cache) == 4
