"""One 2-D map of probe features across checkpoints (and runs), so drift is seen as motion.

We fit **one UMAP on the union** of every checkpoint's features (images and class texts
together) rather than umap-learn's ``AlignedUMAP``. One map means one coordinate system: a point
that moves between frames moved because its features moved, and runs can be compared in the
same picture; ``AlignedUMAP`` fits a map per checkpoint tied together by a regulariser, so
positions are only approximately comparable, and it is about ten times slower on these two
cores (``docs/design.md``, section 4). Identical snapshots (every run
starts from the same backbone) enter the fit once. The embedding is cached on disk under a hash
of its inputs (:func:`clviz.core.store.memo`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from clviz.analysis.drift.extract import FINAL
from clviz.analysis.drift.store import DriftRecord
from clviz.core.progress import in_notebook
from clviz.core.store import memo


@dataclass
class DriftMap:
    """2-D coordinates per run and checkpoint: ``image[run][k]`` (N x 2), ``text[run][k]``."""

    records: Mapping[str, DriftRecord]
    image: dict[str, list[np.ndarray]]
    text: dict[str, list[np.ndarray]]


def _points(snapshot, layer: str) -> torch.Tensor:
    return torch.cat([snapshot.image[layer], snapshot.text[layer]]).float()


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Give torch back its thread count after umap-learn's first fit in a process.

    numba starts its OpenMP threading layer then and sets the OpenMP pool it shares with torch
    to one thread per core, so a one-thread process (a test worker, a main-job worker) would
    train on two threads afterwards: other numbers, and on busy cores up to ten times the CPU
    time in OpenMP's spin-waits."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.cache
def umap_with_cached_kernels() -> ModuleType:
    """umap-learn, its numba kernels cached on disk.

    umap-learn compiles its fuzzy-set and layout kernels at the first fit of every process
    and does not cache them: about 10 s on a laptop core, in every notebook kernel and worker
    that draws a map. Turning on numba's own cache (what ``@njit(cache=True)`` does) makes it a
    one-time cost per environment (``make setup`` pays it: :func:`warm_up`); the compiled code
    and so the maps are the same. umap-learn marks some of its kernels ``cache=True`` itself,
    so wherever it imports, numba has a cache folder for the rest too."""
    import umap  # imported here: numba compiles on first import (seconds)
    from numba.core.dispatcher import Dispatcher

    for module in (umap.umap_, umap.utils, umap.layouts, umap.spectral, umap.distances):
        for kernel in vars(module).values():
            if isinstance(kernel, Dispatcher):
                kernel.enable_caching()
    return umap


def _fit(points: np.ndarray, seed: int, n_neighbors: int, min_dist: float) -> np.ndarray:
    """umap-learn's fit; its epoch bar is a widget in a notebook (``tqdm.auto``), which would
    show the kernel Idle (:mod:`clviz.core.progress`): there a line says what runs instead."""
    desc, notebook = f"UMAP of {len(points)} points, epochs", in_notebook()
    if notebook:
        print(f"{desc} …", flush=True)
    with torch_threads_kept():
        reducer = umap_with_cached_kernels().UMAP(
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            metric="cosine",
            random_state=seed,
            n_jobs=1,
            tqdm_kwds={"disable": notebook, "desc": desc},
        )
        return reducer.fit_transform(points).astype(np.float32)


def warm_up() -> None:
    """Compile and cache umap-learn's kernels with one small fit (``make setup`` runs it)."""
    points = np.random.default_rng(0).random((300, 16), dtype=np.float32)
    _fit(points, seed=0, n_neighbors=15, min_dist=0.3)


def drift_map(
    records: Mapping[str, DriftRecord],
    layer: str = FINAL,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.3,
) -> DriftMap:
    """Fit (or load from ``cache_dir``) one UMAP of ``layer`` over every run and checkpoint."""
    unique: dict[bytes, int] = {}  # content hash of a snapshot -> block index
    blocks: list[torch.Tensor] = []
    where: dict[str, list[int]] = {}
    for run, rec in records.items():
        where[run] = []
        for snap in rec.snapshots:
            pts = _points(snap, layer)
            key = hashlib.sha256(pts.numpy().tobytes()).digest()
            if key not in unique:
                unique[key] = len(blocks)
                blocks.append(pts)
            where[run].append(unique[key])
    points = torch.cat(blocks).numpy()
    digest = hashlib.sha256(points.tobytes())
    digest.update(f"{layer}|{seed}|{n_neighbors}|{min_dist}".encode())

    def fit() -> torch.Tensor:
        return torch.from_numpy(_fit(points, seed, n_neighbors, min_dist))

    if cache_dir is None:
        coords = fit().numpy()
    else:
        coords = memo(Path(cache_dir) / f"umap-{digest.hexdigest()[:16]}.pt", fit).numpy()
    starts = np.cumsum([0] + [len(b) for b in blocks])
    image, text = {}, {}
    for run, rec in records.items():
        n = len(rec.task_ids)
        image[run] = [coords[starts[b] : starts[b] + n] for b in where[run]]
        text[run] = [coords[starts[b] + n : starts[b + 1]] for b in where[run]]
    return DriftMap(records, image, text)
