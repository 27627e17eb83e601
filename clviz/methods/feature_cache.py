"""Frozen features, computed once per image batch and reused on every later evaluation.

Evaluating a T x T accuracy matrix shows each test batch to the model T times. Whatever a
method computes from *frozen* weights (DDAS's generic backbone features, for instance) is the
same every time, so it is cached by the content of the batch: a hash of the image bytes. The
cache holds at most ``max_bytes`` of features and drops the least recently used first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import torch


class FeatureCache:
    """``cache(images)`` returns ``compute(images)``, computed once per distinct batch."""

    def __init__(
        self, compute: Callable[[torch.Tensor], torch.Tensor], max_bytes: int = 1 << 30
    ) -> None:
        self.compute = compute
        self.max_bytes = max_bytes
        self.hits = self.misses = 0
        self._store: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._bytes = 0

    @staticmethod
    def key(images: torch.Tensor) -> bytes:
        data = images.detach().cpu().contiguous()
        h = hashlib.blake2b(str((tuple(data.shape), data.dtype)).encode(), digest_size=16)
        h.update(data.flatten().view(torch.uint8).numpy().tobytes())
        return h.digest()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        k = self.key(images)
        if k in self._store:
            self.hits += 1
            self._store.move_to_end(k)
            return self._store[k]
        self.misses += 1
        features = self.compute(images)
        size = features.numel() * features.element_size()
        if size <= self.max_bytes:
            self._store[k] = features
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._store.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()
        return features

    def clear(self) -> None:
        self._store.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._store)
