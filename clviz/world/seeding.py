"""Seeding for the embedded world: one generator per (seed, stable names)."""

from __future__ import annotations

import zlib

import numpy as np


def rng_for(seed: int, *parts: str) -> np.random.Generator:
    """A generator keyed by ``seed`` and names, hashed with crc32 (Python's hash is salted)."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])
