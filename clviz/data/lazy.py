"""A lazy image store: real datasets are read from disk a batch at a time, never all at once.

:class:`LazyImages` stands in for the ``N x 3 x S x S`` uint8 tensor a :class:`~clviz.world.tasks.
Task` holds for the embedded world: ``store[idx]`` (an index tensor, a list, a slice) returns a
uint8 batch, ``store[i]`` one ``3 x S x S`` image, ``len(store)`` and ``store.shape`` work as on
a tensor. Images are decoded with PIL and preprocessed as CLIP does (RGB, resize the shorter side
to ``S`` with bicubic filtering, centre crop to ``S x S``), so the result is deterministic. The
engine's ``to_model_input`` then only normalises (the size already matches the model's).

Hostile files are named, in one line (:class:`ImageReadError`): damaged or missing files, and
images above the pixel limit (PIL's decompression-bomb guard; ``$CLVIZ_MAX_IMAGE_PIXELS`` raises
it, and sets ``PIL.Image.MAX_IMAGE_PIXELS``). An image above the limit is refused, never read
with a warning: the first read turns PIL's ``DecompressionBombWarning`` into an error for the
process. 16-bit and float images are scaled to 0..255 (:func:`to_rgb`), not clipped to white.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clviz.errors import ImageReadError, InputError

Reader = Callable[[int], Image.Image]
PIXELS_VAR = "CLVIZ_MAX_IMAGE_PIXELS"
_BOMB_FILTER = ("error", None, Image.DecompressionBombWarning, None, 0)


def _gray(values: np.ndarray) -> Image.Image:
    """An RGB image whose three channels are the 2-D uint8 array ``values``."""
    return Image.fromarray(np.repeat(values[:, :, None], 3, axis=2), "RGB")


def _from_16bit(values: np.ndarray) -> np.ndarray:
    """0..65535 to 0..255, rounded (65535 / 255 = 257 exactly, so no value is a tie)."""
    return ((values.astype(np.int64).clip(0, 65535) + 128) // 257).astype(np.uint8)


def _from_int32(values: np.ndarray) -> np.ndarray:
    """Mode ``I``: the 16-bit range when it fits (PNG's 16-bit grey), else scaled by the max."""
    values = values.astype(np.int64).clip(0, None)
    top = int(values.max())
    if top <= 65535:
        return _from_16bit(values)
    return np.round(values * (255.0 / top)).astype(np.uint8)


def _from_float(values: np.ndarray) -> np.ndarray:
    """Mode ``F``: 0..1 floats to 0..255 when the max is at most 1, else clipped to 0..255."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if values.max() <= 1.0:
        values = values * 255.0
    return np.round(values.clip(0.0, 255.0)).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, scaling 16-bit, 32-bit and float greys instead of clipping them.

    PIL's ``convert("RGB")`` clips ``I;16`` / ``I`` / ``F`` at 255, so a 16-bit PNG turns white.
    The 8-bit modes (``1``, ``L``, ``LA``, ``P``, ``RGBA``, ``CMYK``, ``YCbCr``...) convert as PIL
    does (alpha dropped); a palette with transparency goes through RGBA, which gives the same
    colours without PIL's warning. A mode PIL cannot convert is a ValueError naming it.
    """
    mode = image.mode
    if mode.startswith("I;16"):
        return _gray(_from_16bit(np.asarray(image)))
    if mode == "I":
        return _gray(_from_int32(np.asarray(image)))
    if mode == "F":
        return _gray(_from_float(np.asarray(image)))
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise InputError(f"PIL image mode {mode!r} cannot be converted to RGB ({err})") from None


def clip_preprocess(image: Image.Image, size: int) -> np.ndarray:
    """CLIP's geometry on one PIL image: RGB, shorter side to ``size`` (bicubic), centre crop.

    Returns an ``H x W x 3`` uint8 array with ``H = W = size``.
    """
    image = to_rgb(image)
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = round((nw - size) / 2), round((nh - size) / 2)
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def pixel_limit() -> int | None:
    """The most pixels an image clviz reads may have: ``$CLVIZ_MAX_IMAGE_PIXELS``, else PIL's
    ``Image.MAX_IMAGE_PIXELS`` (None: no limit). A bad value is a ValueError naming the variable."""
    value = os.environ.get(PIXELS_VAR)
    if value is None:
        return Image.MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise InputError(
            f"{PIXELS_VAR} must be a positive whole number of pixels (e.g. 200000000), "
            f"got {value!r}"
        )
    return limit


def _apply_pixel_limit() -> int | None:
    """Set PIL's limit from ``$CLVIZ_MAX_IMAGE_PIXELS`` (when given) and make PIL's
    decompression-bomb warning an error, so an image above the limit is refused, not read."""
    limit = pixel_limit()
    if PIXELS_VAR in os.environ:
        Image.MAX_IMAGE_PIXELS = limit
    if _BOMB_FILTER not in warnings.filters:
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    return limit


def _too_big(path: str, pixels: int | None, limit: int | None) -> ImageReadError:
    """The one-line error for an image above the pixel limit, with the variable that raises it."""
    count = "more" if pixels is None else str(pixels)
    raise_to = "a larger number" if pixels is None else f"{pixels} or more"
    return ImageReadError(
        f"image {path} has {count} pixels, more than the limit of {limit} (PIL's guard against "
        f"decompression bombs); if the file is trusted, raise the limit with "
        f"{PIXELS_VAR}={raise_to}, else remove the file from the dataset"
    )


def _bomb_pixels(err: Exception) -> int | None:
    """The pixel count in PIL's decompression-bomb message (None when it is not there)."""
    found = re.search(r"\((\d+) pixels\)", str(err))
    return int(found.group(1)) if found else None


class FileReader:
    """Open image ``i`` of a list of paths (picklable, so data-loader workers can use it)."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [str(p) for p in paths]

    def __call__(self, i: int) -> Image.Image:
        path = self.paths[i]
        limit = _apply_pixel_limit()
        try:
            with open(path, "rb") as f:
                image = Image.open(f)
                w, h = image.size
                if limit is not None and max(w, 1) * max(h, 1) > limit:  # whatever the filters
                    raise _too_big(path, max(w, 1) * max(h, 1), limit)
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise _too_big(path, _bomb_pixels(err), limit) from None
        except OSError as err:  # missing, truncated or not an image (PIL's errors are OSErrors)
            raise ImageReadError(
                f"cannot read image {path} ({err}); restore the file from the original "
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
            raise InputError(f"image size must be positive, got {size}")
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
        image = self.reader(int(source))
        try:
            return clip_preprocess(image, self.size)
        except (ValueError, OSError) as err:  # an image mode PIL cannot bring to RGB
            paths = getattr(self.reader, "paths", None)
            name = paths[int(source)] if paths is not None else f"number {int(source)}"
            raise ImageReadError(
                f"cannot convert image {name} to RGB ({err}); save it as an ordinary RGB or "
                "greyscale image"
            ) from None

    def _load(self, sources: Sequence[int] | np.ndarray) -> torch.Tensor:
        if len(sources) == 0:
            return torch.empty((0, 3, self.size, self.size), dtype=torch.uint8)
        if self.workers and len(sources) > 1:
            with ThreadPoolExecutor(min(self.workers, len(sources))) as pool:
                arrays = list(pool.map(self._one, sources))
        else:
            arrays = [self._one(s) for s in sources]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
