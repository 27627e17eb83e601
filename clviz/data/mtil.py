"""The real MTIL benchmark: 11 datasets read through torchvision, lazily, as clviz tasks.

Each dataset is opened with torchvision's own class (``download=False`` unless asked) under a
data root the user points to (``--data-root`` or ``$CLVIZ_DATA``), and becomes an ordinary
:class:`~clviz.core.task.Task` whose images are a :class:`~clviz.data.lazy.LazyImages` store
(CLIP's resize and centre crop, 224 px by default). Class names and prompt templates are CLIP's
(:mod:`clviz.data.classnames`). Orders I and II are those of ZSCL (``docs/design.md``, section 2);
the few-shot variant keeps 5 training images per class, drawn with the run's seed.

Splits as ZSCL's ``mtil/src/datasets/collections.py``: torchvision's own where it has them
(Aircraft train / test, CIFAR-100 train / test, DTD partition 1 train / test, Flowers102
train / test, Food-101 train / test, MNIST train / test, Oxford Pets trainval / test, Stanford
Cars train / test). Caltech101, EuroSAT and SUN397 have none: ZSCL's ``split_dataset`` takes
``torch.utils.data.random_split`` of the whole dataset, 80% (``int(0.8 * n)``) to training, with
``torch.Generator().manual_seed(42)``; :func:`reference_split` draws the same permutation, so the
same images land on each side as long as the dataset lists its images in torchvision's order.
SUN397 is the exception: torchvision lists it in ``rglob`` order, which depends on the file
system, so the reference's split is not the same on two machines; clviz sorts the paths first
(reproducible everywhere, but not the reference's exact split).
MD5 checks are skipped (CIFAR-100, Flowers102) so that any copy with the right layout loads.
Stanford Cars' original download is gone; its torchvision layout is what the Kaggle mirror of
the dataset holds (with ``cars_test_annos_withlabels.mat``).

Before torchvision lists a dataset, :func:`~clviz.data.scan.scan_dataset` walks its folder once
without following links and refuses any link below it (a loop would hang torchvision's walk, a
duplicate would put one image in both splits); after listing, no image may appear twice in one
split or in both. :func:`dataset_fingerprint` (and :func:`stream_fingerprint`) give a cheap
content identity of the folders, from the same walk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from clviz.core.task import FEW_SHOT_K, Task
from clviz.data import classnames as cn
from clviz.data.lazy import ArrayReader, FileReader, LazyImages, Reader, pixel_limit
from clviz.data.scan import DatasetError, check_unique, scan_dataset
from clviz.errors import InputError

DATA_ENV = "CLVIZ_DATA"
MTIL_IMAGE_SIZE = 224  # CLIP ViT-B/16's input
TRAIN_SHARE = 0.8  # ZSCL split_dataset(ratio=0.8)
SPLIT_SEED = 42  # ZSCL: torch.Generator().manual_seed(42)

MTIL_ORDER_I = (
    "Aircraft",
    "Caltech101",
    "CIFAR100",
    "DTD",
    "EuroSAT",
    "Flowers",
    "Food",
    "MNIST",
    "OxfordPet",
    "StanfordCars",
    "SUN397",
)
MTIL_ORDER_II = (
    "StanfordCars",
    "Food",
    "MNIST",
    "OxfordPet",
    "Flowers",
    "SUN397",
    "Aircraft",
    "Caltech101",
    "DTD",
    "EuroSAT",
    "CIFAR100",
)


@dataclass(frozen=True)
class MTILStream:
    """An ordered list of real datasets, optionally few-shot."""

    datasets: tuple[str, ...]
    few_shot: int | None = None
    description: str = ""


MTIL_STREAMS: dict[str, MTILStream] = {
    "mtil": MTILStream(
        MTIL_ORDER_I, description="real MTIL, order I (11 datasets, needs --data-root)"
    ),
    "mtil-ii": MTILStream(MTIL_ORDER_II, description="real MTIL, order II (needs --data-root)"),
    "mtil-fewshot": MTILStream(
        MTIL_ORDER_I, FEW_SHOT_K, f"real MTIL order I, {FEW_SHOT_K} images per class"
    ),
    "mtil-ii-fewshot": MTILStream(
        MTIL_ORDER_II, FEW_SHOT_K, f"real MTIL order II, {FEW_SHOT_K} images per class"
    ),
}


@dataclass
class Split:
    """One split of a dataset: a reader over its source images, their labels, the class names."""

    reader: Reader
    labels: np.ndarray
    classnames: tuple[str, ...]


# --------------------------------------------------------------------------- split helpers
def reference_split(n: int, train: bool) -> np.ndarray:
    """ZSCL's ``split_dataset``: indices of ``random_split(range(n), [int(0.8 n), rest],
    generator=torch.Generator().manual_seed(42))``, the training or the test part, in the
    order ``random_split`` gives them."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).numpy()
    train_size = int(TRAIN_SHARE * n)
    return order[:train_size] if train else order[train_size:]


def few_shot_indices(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` indices per class drawn with ``seed`` (every image of a class with fewer)."""
    rng = np.random.default_rng([seed, k])
    keep = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        keep.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


def _subset(split: Split, idx: np.ndarray) -> Split:
    paths = [split.reader.paths[i] for i in idx]  # type: ignore[attr-defined]
    return Split(FileReader(paths), split.labels[idx], split.classnames)


# --------------------------------------------------------------------------- the 11 loaders
def _aircraft(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import FGVCAircraft

    ds = FGVCAircraft(root, split="train" if train else "test", download=download)
    return Split(FileReader(ds._image_files), np.array(ds._labels), tuple(ds.classes))


def _caltech101(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import Caltech101

    ds = Caltech101(root, download=download)
    folder = Path(ds.root) / "101_ObjectCategories"
    paths = [
        folder / ds.categories[y] / f"image_{i:04d}.jpg"
        for y, i in zip(ds.y, ds.index, strict=True)
    ]
    unknown = [c for c in ds.categories if c not in cn.CALTECH101]
    if unknown:
        raise InputError(f"unexpected category folders {unknown[:5]}")
    split = Split(FileReader(paths), np.array(ds.y), tuple(cn.CALTECH101[c] for c in ds.categories))
    return _subset(split, reference_split(len(split.labels), train))


def _cifar100(root: Path, train: bool, download: bool) -> Split:
    import pickle

    from torchvision.datasets import CIFAR100

    class NoMD5(CIFAR100):
        """torchvision's CIFAR100 without its MD5 checks: the files must exist, nothing more."""

        def _check_integrity(self) -> bool:
            files = [f for f, _ in self.train_list + self.test_list]
            return all((Path(self.root) / self.base_folder / f).is_file() for f in files)

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    ds = (CIFAR100 if download else NoMD5)(root, train=train, download=download)
    names = tuple(cn.clip_name(c) for c in ds.classes)
    return Split(ArrayReader(ds.data), np.array(ds.targets), names)


def _dtd(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import DTD

    ds = DTD(root, split="train" if train else "test", partition=1, download=download)
    return Split(FileReader(ds._image_files), np.array(ds._labels), tuple(ds.classes))


def _eurosat(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import EuroSAT

    ds = EuroSAT(root, download=download)
    unknown = [c for c in ds.classes if c not in cn.EUROSAT]
    if unknown:
        raise InputError(f"unexpected class folders {unknown[:5]}")
    paths, labels = zip(*ds.samples, strict=True) if ds.samples else ((), ())
    split = Split(FileReader(paths), np.array(labels), tuple(cn.EUROSAT[c] for c in ds.classes))
    return _subset(split, reference_split(len(split.labels), train))


def _flowers(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import Flowers102

    class NoMD5(Flowers102):
        def _check_integrity(self) -> bool:
            files = [self._base_folder / self._file_dict[k][0] for k in ("label", "setid")]
            return self._images_folder.is_dir() and all(f.is_file() for f in files)

    cls = Flowers102 if download else NoMD5
    ds = cls(root, split="train" if train else "test", download=download)
    return Split(FileReader(ds._image_files), np.array(ds._labels), cn.FLOWERS102)


def _food(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import Food101

    ds = Food101(root, split="train" if train else "test", download=download)
    names = tuple(cn.clip_name(c) for c in ds.classes)
    return Split(FileReader(ds._image_files), np.array(ds._labels), names)


def _mnist(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import MNIST

    ds = MNIST(root, train=train, download=download)
    names = tuple(str(d) for d in range(10))
    return Split(ArrayReader(ds.data.numpy()), ds.targets.numpy(), names)


def _pets(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import OxfordIIITPet

    ds = OxfordIIITPet(root, split="trainval" if train else "test", download=download)
    # CLIP's names come from the image ids (cats capitalised, dogs not), which torchvision's
    # title-cased ``classes`` lose.
    raw = {y: p.stem.rsplit("_", 1)[0] for p, y in zip(ds._images, ds._labels, strict=True)}
    names = tuple(cn.clip_name(raw[y]) for y in sorted(raw))
    return Split(FileReader(ds._images), np.array(ds._labels), names)


def _cars(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import StanfordCars

    ds = StanfordCars(root, split="train" if train else "test", download=download)
    paths, labels = zip(*ds._samples, strict=True) if ds._samples else ((), ())
    return Split(FileReader(paths), np.array(labels), tuple(str(c) for c in ds.classes))


def _sun397(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import SUN397

    ds = SUN397(root, download=download)
    order = sorted(range(len(ds._image_files)), key=lambda i: str(ds._image_files[i]))
    paths = [ds._image_files[i] for i in order]  # rglob's order depends on the file system
    labels = np.array([ds._labels[i] for i in order])
    split = Split(FileReader(paths), labels, tuple(cn.clip_name(c) for c in ds.classes))
    return _subset(split, reference_split(len(split.labels), train))


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under the data root, how torchvision reads it, and how to get it."""

    name: str
    folder: str
    torchvision: str
    layout: str
    load: Callable[[Path, bool, bool], Split]
    note: str = ""


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            "Aircraft",
            "fgvc-aircraft-2013b",
            "FGVCAircraft",
            "fgvc-aircraft-2013b/data/{variants.txt, images_variant_trainval.txt, "
            "images_variant_test.txt, images/<id>.jpg}",
            _aircraft,
        ),
        DatasetSpec(
            "Caltech101",
            "caltech101",
            "Caltech101",
            "caltech101/101_ObjectCategories/<category>/image_0001.jpg ... "
            "(including BACKGROUND_Google/, which is left out)",
            _caltech101,
        ),
        DatasetSpec(
            "CIFAR100",
            "cifar-100-python",
            "CIFAR100",
            "cifar-100-python/{train, test, meta} (the python pickles)",
            _cifar100,
        ),
        DatasetSpec(
            "DTD",
            "dtd",
            "DTD",
            "dtd/dtd/{images/<class>/<name>.jpg, labels/train1.txt, labels/val1.txt, "
            "labels/test1.txt}",
            _dtd,
        ),
        DatasetSpec(
            "EuroSAT", "eurosat", "EuroSAT", "eurosat/2750/<ClassFolder>/<name>.jpg", _eurosat
        ),
        DatasetSpec(
            "Flowers",
            "flowers-102",
            "Flowers102",
            "flowers-102/{jpg/image_00001.jpg ..., imagelabels.mat, setid.mat}",
            _flowers,
        ),
        DatasetSpec(
            "Food",
            "food-101",
            "Food101",
            "food-101/{meta/train.json, meta/test.json, images/<class>/<id>.jpg}",
            _food,
        ),
        DatasetSpec(
            "MNIST",
            "MNIST",
            "MNIST",
            "MNIST/raw/{train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            "t10k-labels-idx1-ubyte} (uncompressed)",
            _mnist,
        ),
        DatasetSpec(
            "OxfordPet",
            "oxford-iiit-pet",
            "OxfordIIITPet",
            "oxford-iiit-pet/{images/<Breed_name>_<n>.jpg, annotations/trainval.txt, "
            "annotations/test.txt}",
            _pets,
        ),
        DatasetSpec(
            "StanfordCars",
            "stanford_cars",
            "StanfordCars",
            "stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, "
            "cars_test_annos_withlabels.mat, cars_train/<fname>.jpg, cars_test/<fname>.jpg}",
            _cars,
            "torchvision can no longer download it: get the files from a mirror (e.g. Kaggle's "
            "'stanford-cars-dataset' plus 'cars_test_annos_withlabels.mat').",
        ),
        DatasetSpec(
            "SUN397",
            "SUN397",
            "SUN397",
            "SUN397/{ClassName.txt, <letter>/<class>[/<subclass>]/sun_<id>.jpg}",
            _sun397,
        ),
    )
}


# --------------------------------------------------------------------------- public API
def resolve_data_root(root: str | os.PathLike | None) -> Path:
    """``root``, else ``$CLVIZ_DATA``; a clear error when neither is given or it is no folder."""
    text = root if root is not None else os.environ.get(DATA_ENV)
    if not text:
        raise DatasetError(
            f"no data root for the real MTIL datasets: pass --data-root /path/to/data (or set "
            f"{DATA_ENV}). The folder holds one sub-folder per dataset in torchvision's layout; "
            "see clviz.data.mtil.describe_layout()."
        )
    path = Path(text).expanduser()
    if not path.is_dir():
        raise DatasetError(f"data root {path} does not exist or is not a folder")
    return path


def describe_layout() -> str:
    """The expected on-disk layout of every dataset, one line each."""
    return "\n".join(f"  {s.name:<13} {s.layout}" for s in DATASETS.values())


def _dataset_error(spec: DatasetSpec, root: Path, problem: str) -> DatasetError:
    hint = spec.note or (
        f'To download it (only if you want to), run: python -c "from torchvision.datasets '
        f"import {spec.torchvision}; {spec.torchvision}('{root}', download=True)\""
    )
    return DatasetError(
        f"MTIL dataset {spec.name!r} could not be read from {root / spec.folder}: {problem}. "
        f"Expected layout under the data root {root}: {spec.layout} "
        f"(read by torchvision.datasets.{spec.torchvision}). {hint}"
    )


def _spec(name: str) -> DatasetSpec:
    """The spec of MTIL dataset ``name``, or a DatasetError listing the valid names."""
    if name not in DATASETS:
        raise DatasetError(f"unknown MTIL dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[name]


def _read_split(spec: DatasetSpec, path: Path, train: bool, download: bool) -> Split:
    """One split as torchvision lists it; any failure is the dataset's error with its layout."""
    try:
        split = spec.load(path, train, download)
    except (RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise _dataset_error(spec, path, f"{type(err).__name__}: {err}") from err
    expected = cn.NUM_CLASSES[spec.name]
    if len(split.classnames) != expected:
        raise _dataset_error(
            spec, path, f"found {len(split.classnames)} classes, expected {expected}"
        )
    if len(split.labels) == 0:
        raise _dataset_error(spec, path, f"the {'train' if train else 'test'} split is empty")
    return split


def _scan(spec: DatasetSpec, path: Path) -> str | None:
    """Scan the dataset's folder before torchvision lists it (its fingerprint; None when the
    folder is missing, which torchvision then reports)."""
    folder = path / spec.folder
    return scan_dataset(folder, spec.name) if folder.is_dir() else None


def _check_listing(spec: DatasetSpec, path: Path, splits: dict[str, Split]) -> None:
    """No image twice in one split or in two (datasets read from image files only)."""
    listed = {k: s.reader.paths for k, s in splits.items() if isinstance(s.reader, FileReader)}
    if listed:
        check_unique(listed, path / spec.folder, spec.name)


def load_split(name: str, root: str | os.PathLike | None, train: bool, download: bool = False):
    """One split of dataset ``name`` (an MTIL name, e.g. ``"Aircraft"``) as a :class:`Split`."""
    spec, path = _spec(name), resolve_data_root(root)
    pixel_limit()  # a bad $CLVIZ_MAX_IMAGE_PIXELS fails here, before any worker starts
    _scan(spec, path)
    split = _read_split(spec, path, train, download)
    _check_listing(spec, path, {"train" if train else "test": split})
    return split


def _load_both(name: str, root: Path, download: bool) -> tuple[Split, Split]:
    """The train and test splits of ``name`` after one scan of its folder, checked together."""
    spec = _spec(name)
    pixel_limit()  # a bad $CLVIZ_MAX_IMAGE_PIXELS fails here, before any worker starts
    _scan(spec, root)
    train = _read_split(spec, root, True, download)
    test = _read_split(spec, root, False, download)
    _check_listing(spec, root, {"train": train, "test": test})
    return train, test


@lru_cache(maxsize=64)
def _make_task(
    name: str, root: Path, image_size: int, k: int | None, seed: int, download: bool
) -> Task:
    spec = DATASETS[name]
    train, test = _load_both(name, root, download)
    train_idx = None if k is None else few_shot_indices(train.labels, k, seed)
    train_labels = train.labels if train_idx is None else train.labels[train_idx]
    shots = "" if k is None else f", {k} images per class"
    return Task(
        name,
        train.classnames,
        cn.TEMPLATES[name],
        LazyImages(train.reader, image_size, train_idx),
        torch.as_tensor(train_labels, dtype=torch.long),
        LazyImages(test.reader, image_size),
        torch.as_tensor(test.labels, dtype=torch.long),
        f"torchvision.datasets.{spec.torchvision}",
        f"{len(train.classnames)} classes{shots}, read from {root / spec.folder}",
    )


def make_mtil_task(
    name: str,
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    few_shot: int | None = None,
    seed: int = 0,
    download: bool = False,
) -> Task:
    """The real dataset ``name`` as a lazy :class:`Task` (cached per arguments).

    ``few_shot=k`` keeps ``k`` training images per class drawn with ``seed``; the test split is
    always complete. ``download=True`` lets torchvision fetch what it can (never by default).
    """
    size = MTIL_IMAGE_SIZE if image_size is None else int(image_size)
    return _make_task(name, resolve_data_root(root).resolve(), size, few_shot, seed, download)


def parse_mtil_stream(name: str) -> MTILStream:
    """The real stream ``name``: a named one (``mtil``, ``mtil-fewshot``...), or a named one
    restricted to some of its datasets, in the order given: ``mtil:Aircraft,DTD,MNIST``.

    A subset is how a reduced real stream runs (a quick look on a laptop, or CI on fake folders
    of three datasets); its folder in the run store carries the subset in its name.
    """
    base, _, subset = name.partition(":")
    if base not in MTIL_STREAMS:
        raise InputError(
            f"unknown real stream {base!r}; valid: {', '.join(MTIL_STREAMS)} "
            "(optionally restricted, e.g. 'mtil:Aircraft,DTD,MNIST')"
        )
    spec = MTIL_STREAMS[base]
    if not subset:
        return spec
    datasets = tuple(d.strip() for d in subset.split(","))
    unknown = [d for d in datasets if d not in spec.datasets]
    if unknown or len(set(datasets)) != len(datasets):
        raise InputError(
            f"stream {name!r} names {'unknown' if unknown else 'repeated'} datasets "
            f"{unknown or list(datasets)}; choose each once from: {', '.join(spec.datasets)}"
        )
    return MTILStream(datasets, spec.few_shot, f"{spec.description}, only {', '.join(datasets)}")


def get_mtil_stream(
    name: str = "mtil",
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = False,
) -> tuple[Task, ...]:
    """The tasks of real stream ``name`` (``mtil``, ``mtil-ii``, ``mtil-fewshot``, or a subset
    such as ``mtil:Aircraft,DTD``; see :func:`parse_mtil_stream`) in order."""
    spec = parse_mtil_stream(name)
    return tuple(
        make_mtil_task(d, root, image_size, spec.few_shot, seed, download) for d in spec.datasets
    )


def dataset_fingerprint(root: str | os.PathLike | None, name: str) -> str:
    """A cheap content identity of dataset ``name`` under ``root``: the sha256 of the sorted
    (relative path, size, mtime_ns) of every file of its folder, from ``stat`` alone.

    Adding, removing, renaming or replacing a file (another size or mtime) changes it; reading
    does not. The walk is the loader's scan, so a link in the folder is refused here too; a
    missing folder is the loader's own error.
    """
    spec, path = _spec(name), resolve_data_root(root)
    fingerprint = _scan(spec, path)
    if fingerprint is None:  # let torchvision say what is missing, as the loader does
        _read_split(spec, path, True, False)
        raise _dataset_error(spec, path, f"the folder {path / spec.folder} does not exist")
    return fingerprint


def stream_fingerprint(stream: str, data_root: str | os.PathLike | None) -> dict[str, str]:
    """The :func:`dataset_fingerprint` of every dataset of real stream ``stream`` (a named one or
    a subset such as ``mtil:EuroSAT,DTD``), in the stream's order."""
    spec, root = parse_mtil_stream(stream), resolve_data_root(data_root)
    return {name: dataset_fingerprint(root, name) for name in spec.datasets}
