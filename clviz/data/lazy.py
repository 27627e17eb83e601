"""A lazy image store: real datasets are read from disk a batch at a time, never all at once.

:class:`LazyImages` stands in for the ``N x 3 x S x S`` uint8 tensor a :class:`~clviz.world.tasks.
Task` holds for the embedded world: ``store[idx]`` (an index tensor, a list, a slice) returns a
uint8 batch, ``store[i]`` one ``3 x S x S`` image, ``len(store)`` and ``store.shape`` work as on
a tensor. Images are decoded with PIL and preprocessed as CLIP does (RGB, resize the shorter side
to ``S`` with bicubic filtering, centre crop to ``S x S``), so the result is deterministic. The
engine's ``to_model_input`` then only normalises (the size already matches the model's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

Reader = Callable[[int], Image.Image]


def clip_preprocess(image: Image.Image, size: int) -> np.ndarray:
    """CLIP's geometry on one PIL image: RGB, shorter side to ``size`` (bicubic), centre crop.

    Returns an ``H x W x 3`` uint8 array with ``H = W = size``.
    """
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = round((nw - size) / 2), round((nh - size) / 2)
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


class ImageReadError(ValueError):
    """An image file of a dataset cannot be read; the message names the file."""


class FileReader:
    """Open image ``i`` of a list of paths (picklable, so data-loader workers can use it)."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [str(p) for p in paths]

    def __call__(self, i: int) -> Image.Image:
        try:
            with open(self.paths[i], "rb") as f:
                image = Image.open(f)
                image.load()
        except OSError as err:  # missing, truncated or not an image (PIL's errors are OSErrors)
            raise ImageReadError(
                f"cannot read image {self.paths[i]} ({err}); restore the file from the original "
                "dataset, or delete the dataset's folder and copy it again"
            ) from err
        return image

    def __len__(self) -> int:
        return len(self.paths)


class ArrayReader:
    """Image ``i`` of an in-memory uint8 array (N x H x W or N x H x W x 3: MNIST, CIFAR)."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __call__(self, i: int) -> Image.Image:
        return Image.fromarray(self.array[i])

    def __len__(self) -> int:
        return len(self.array)


class LazyImages:
    """Images read and preprocessed on demand; indexable like a uint8 ``N x 3 x S x S`` tensor.

    Args:
        reader: ``reader(i)`` returns source image ``i`` as a PIL image.
        size: the square side ``S`` every image is brought to.
        indices: which source images make up this store, in order (default: all of them).
        workers: threads that decode a batch (PIL releases the GIL while decoding); 0 decodes in
            the calling thread. The result does not depend on it.
    """

    def __init__(
        self,
        reader: Reader,
        size: int,
        indices: Sequence[int] | np.ndarray | None = None,
        workers: int = 4,
    ):
        if size < 1:
            raise ValueError(f"image size must be positive, got {size}")
        self.reader = reader
        self.size = int(size)
        if indices is None:
            indices = np.arange(len(reader))  # type: ignore[arg-type]
        self.indices = np.asarray(indices, dtype=np.int64)
        self.workers = workers

    # ------------------------------------------------------------------ tensor-like surface
    def __len__(self) -> int:
        return len(self.indices)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), 3, self.size, self.size))

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def __repr__(self) -> str:
        return f"LazyImages({len(self)} images of {self.size}x{self.size} px)"

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, int | np.integer) or (torch.is_tensor(key) and key.ndim == 0):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"image index {i} out of range for {len(self)} images")
            return self._load([self.indices[i]])[0]
        return self._load(self.indices[self._positions(key)])

    def take(self, positions: Sequence[int] | np.ndarray | torch.Tensor) -> LazyImages:
        """A lazy subset (no image is read): the images at ``positions`` of this store."""
        return LazyImages(
            self.reader, self.size, self.indices[self._positions(positions)], self.workers
        )

    def materialize(self) -> torch.Tensor:
        """Every image as one uint8 tensor (only for small stores: fake folders, few-shot)."""
        return self[:]

    # ------------------------------------------------------------------ internals
    def _positions(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(len(self))[key]
        if torch.is_tensor(key):
            key = key.cpu().numpy()
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {key.shape} for {len(self)} images")
            return np.nonzero(key)[0]
        if key.ndim != 1 or not np.issubdtype(key.dtype, np.integer):
            raise IndexError(
                f"index images with an int, a slice or a 1-D integer index, got {key!r}"
            )
        if len(key) and (key.max() >= len(self) or key.min() < -len(self)):
            raise IndexError(f"image index out of range for {len(self)} images")
        return key

    def _one(self, source: int) -> np.ndarray:
        return clip_preprocess(self.reader(int(source)), self.size)

    def _load(self, sources: Sequence[int] | np.ndarray) -> torch.Tensor:
        if len(sources) == 0:
            return torch.empty((0, 3, self.size, self.size), dtype=torch.uint8)
        if self.workers and len(sources) > 1:
            with ThreadPoolExecutor(min(self.workers, len(sources))) as pool:
                arrays = list(pool.map(self._one, sources))
        else:
            arrays = [self._one(s) for s in sources]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
