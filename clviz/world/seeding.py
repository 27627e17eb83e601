"""Seeded sampling for the embedded world: generators keyed by stable names, balanced labels."""

from __future__ import annotations

import zlib

import numpy as np
import torch


def rng_for(seed: int, *parts: str) -> np.random.Generator:
    """A generator keyed by ``seed`` and names, hashed with crc32 (Python's hash is salted)."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def balanced_labels(rng: np.random.Generator, num_classes: int, per_class: int) -> np.ndarray:
    """``per_class`` copies of every class index, in a random order."""
    labels = np.repeat(np.arange(num_classes), per_class)
    rng.shuffle(labels)
    return labels


def image_tensor(images: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """uint8 images, H x W x 3 each, as one N x 3 x H x W tensor."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
