"""Frozen features, computed once and reused: per image batch, or per image.

Evaluating a T x T accuracy matrix shows each test batch to the model T times. Whatever a
method computes from *frozen* weights (DDAS's generic backbone features, for instance) is the
same every time, so :class:`FeatureCache` caches it by the content of the batch: a hash of the
image bytes. It holds at most ``max_bytes`` of features and drops the least recently used first.

Training draws a task's images again and again (100 steps of 64 from 640 images: each about ten
times), and a frozen teacher embeds each the same way every time: :class:`ImageCache` keeps one
row per distinct image, so a teacher sees each image once per task. The rows are computed on the
images not seen before, as one batch, so they can differ from an uncached pass over the whole
batch in the last bits of floating point (matrix products block differently by batch size).
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


class ImageCache:
    """``cache(images)`` returns ``compute(images)`` (one row per image), computing each
    distinct image once; at most ``max_items`` rows are kept, the oldest dropped first."""

    def __init__(
        self, compute: Callable[[torch.Tensor], torch.Tensor], max_items: int = 1 << 16
    ) -> None:
        self.compute = compute
        self.max_items = max_items
        self.hits = self.misses = 0
        self._rows: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        keys = [FeatureCache.key(image) for image in images]
        new: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in self._rows and k not in new:
                new[k] = i
        self.misses += len(new)
        self.hits += len(keys) - len(new)
        if new:
            rows = self.compute(images[list(new.values())])
            for k, row in zip(new, rows, strict=True):
                self._rows[k] = row
        out = torch.stack([self._rows[k] for k in keys])
        while len(self._rows) > self.max_items:
            self._rows.popitem(last=False)
        return out

    def __len__(self) -> int:
        return len(self._rows)
