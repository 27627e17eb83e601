"""The one in-memory cache of frozen computations: one row per example, keyed by its position.

Whatever a method computes from *frozen* weights is the same every time it sees an example:

- DDAS's generic backbone features of a test image (MoE-Adapters): evaluating a T x T accuracy
  matrix shows every test batch to the model T times;
- a frozen teacher's embedding of an image (ZSCL's reference images, MulKI's and LwF's training
  images): training draws a task's images again and again (100 steps of 64 from 640 images:
  each about ten times).

:class:`RowCache` keeps one row of ``compute(images)`` per example, keyed by *where the example
comes from*, never by its pixels: the key of a row is ``(namespace, position)``, the namespace
naming the data (a task's name and split, ``("emoji-animals", "test")``, or ``"reference"``)
and the position being the example's index in it (:attr:`clviz.core.formats.Batch.index`, or
the positions a method drew). A namespace must name the same examples for as long as the cache
lives: MoE-Adapters keeps one cache for the run (a task's name names its data within a run);
ZSCL, MulKI and LwF make a new one per task, on purpose (a run resumed at a task boundary
repeats the uninterrupted one exactly).

A call computes the rows it has not seen, together, as one batch, in the order they first
appear in the call (an example drawn twice is computed once), and returns every row in the
call's order. When every row of a call is new, ``compute`` sees exactly the call's images, as
an uncached pass would. A row computed with others is therefore reused for any later call that
contains it: when two callers group the same examples differently, or after a call finds only
part of its rows (the rest evicted), a row may differ from an uncached pass over the later
group in the last bits of floating point (matrix products block differently by batch size).
At most ``max_bytes`` of rows are kept; the least recently used row goes first (0 keeps
nothing: the cache is off).

The other caches of clviz that hold tensors or arrays are ``functools`` caches of *inputs*, each
bounded by its ``maxsize``:

- ``clviz.world.tasks.make_task``: ``maxsize=64``; embedded-world ``Task`` objects (the image
  and label tensors of both splits).
- ``clviz.world.multimodal.make_pair_task``: ``maxsize=16``; ``PairTask`` objects (image,
  token and label tensors).
- ``clviz.world.sources.handwritten_digits``: ``maxsize=1``; scikit-learn's digits (an
  N x 8 x 8 float array and the labels).
- ``clviz.world.sources.digit_split``: ``maxsize=64`` (its arguments take at most 3 x 11
  values); index arrays into the digits.
- ``clviz.world.sources.emoji_sprite`` (``maxsize=256``), ``digit_sprite`` (``maxsize=2048``),
  ``glyph_sprite`` (``maxsize=512``): 64 x 64 PIL sprites.
- ``clviz.data.mtil._make_task``: ``maxsize=64``; MTIL ``Task`` objects (label tensors and
  lazy image readers, no decoded images).

Caches that hold no tensor: ``clviz.world.sources._emoji_font`` (maxsize=1, a font),
``clviz.world.tasks.world_version`` (maxsize=1, a string), ``clviz.backbone.register_tiny_config``
(maxsize=1, nothing: it runs once) and ``clviz.analysis.drift.umap_map.umap_with_cached_kernels``
(``@functools.cache``, the umap module).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from clviz.core.formats import Batch

Index = slice | torch.Tensor | Sequence[int]
DEFAULT_MAX_BYTES = 256 << 20  # a frozen teacher's embeddings of a task's images fit many times


def positions(index: Index, n: int) -> list[int]:
    """The ``n`` positions ``index`` names: a slice (from its start, ``n`` of them), a tensor
    of positions or a boolean mask, or a sequence of ints."""
    if isinstance(index, slice):
        step = 1 if index.step is None else index.step
        if step <= 0:
            raise ValueError(f"a cached batch's slice must step forward, got {index}")
        start = 0 if index.start is None else index.start
        return list(range(start, start + step * n, step))
    if isinstance(index, torch.Tensor):
        if index.dtype == torch.bool:
            index = index.nonzero()
        found = [int(p) for p in index.flatten().tolist()]
    else:
        found = [int(p) for p in index]
    if len(found) != n:
        raise ValueError(f"the index names {len(found)} examples but there are {n} images")
    return found


def _nbytes(row: torch.Tensor) -> int:
    return row.numel() * row.element_size()


class RowCache:
    """``cache(namespace, index, images)`` returns ``compute(images)``, one row per image,
    computing the row of each ``(namespace, position)`` once (see the module docstring)."""

    def __init__(
        self,
        compute: Callable[[torch.Tensor], torch.Tensor],
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.compute = compute
        self.max_bytes = max_bytes
        self.hits = self.misses = 0  # rows found / rows computed
        self._rows: OrderedDict[tuple[Hashable, int], torch.Tensor] = OrderedDict()
        self._bytes = 0

    @torch.no_grad()
    def __call__(self, namespace: Hashable, index: Index, images: torch.Tensor) -> torch.Tensor:
        keys = [(namespace, p) for p in positions(index, len(images))]
        new: dict[tuple[Hashable, int], int] = {}  # key -> its first row in the call
        for i, key in enumerate(keys):
            if key not in self._rows and key not in new:
                new[key] = i
        self.misses += len(new)
        self.hits += len(keys) - len(new)
        fresh: dict[tuple[Hashable, int], torch.Tensor] = {}
        computed = None
        if new:
            rows = list(new.values())
            whole = rows == list(range(len(images)))
            computed = self.compute(images if whole else images[rows])
            fresh = dict(zip(new, computed, strict=True))
        for key in keys:  # the rows found are now the most recently used
            if key not in fresh:
                self._rows.move_to_end(key)
        if len(new) == len(keys):  # every row new and distinct: the computation itself
            out = computed
        else:
            out = torch.stack([fresh[k] if k in fresh else self._rows[k] for k in keys])
        for key, row in fresh.items():
            row = row.clone()  # its own storage: an evicted row frees its memory
            self._rows[key] = row
            self._bytes += _nbytes(row)
        self._evict()
        return out

    def batch(self, name: str, batch: Batch) -> torch.Tensor:
        """The rows of ``batch``'s images, keyed by ``((name, batch.split), position)``:
        ``name`` is the name of the batch's task."""
        return self((name, batch.split), batch.index, batch.images)

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._rows:
            _, old = self._rows.popitem(last=False)
            self._bytes -= _nbytes(old)

    def clear(self) -> None:
        self._rows.clear()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        """The bytes of the rows kept."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: tuple[Hashable, int]) -> bool:
        return key in self._rows
