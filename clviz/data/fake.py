"""Tiny fake copies of the 11 MTIL datasets, in the exact on-disk layouts torchvision reads.

A test and demonstration utility: the tests build these folders to check every loader without
the real data, and notebook 09 uses them to show a real-benchmark run end to end on a laptop.
:func:`write_narrow_vit` and :func:`save_random_weights` give such runs a cheap open_clip ViT and
a local weights file, so nothing is downloaded.
Every class gets a few small images of one colour (a shade per class, with a light pattern), so
a model can learn them; names are synthetic where the loaders take names from the data, and the
real folder names where the loaders map folder names to CLIP's (Caltech101, EuroSAT).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from clviz.data import classnames as cn
from clviz.data.mtil import DATASETS
from clviz.errors import InputError

FAKE_SIZE = (20, 14)  # width x height: not square, so the centre crop is exercised


def _image(rng: np.random.Generator, label: int, n_classes: int) -> Image.Image:
    hue = np.array(
        [(label * 97) % 256, (label * 57 + 80) % 256, (255 * label) // max(n_classes, 1)]
    )
    w, h = FAKE_SIZE
    noise = rng.integers(-20, 21, size=(h, w, 3))
    pixels = np.clip(hue[None, None, :] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)


def _labels(n_classes: int, per_class: int) -> list[int]:
    return [c for c in range(n_classes) for _ in range(per_class)]


def _aircraft(root: Path, rng, train: int, test: int) -> None:
    base = root / "fgvc-aircraft-2013b" / "data"
    names = [f"Variant-{c:03d}" for c in range(cn.NUM_CLASSES["Aircraft"])]
    base.mkdir(parents=True, exist_ok=True)
    (base / "variants.txt").write_text("\n".join(names) + "\n")
    for split, per_class in (("train", train), ("test", test)):
        lines = []
        for i, c in enumerate(_labels(len(names), per_class)):
            image_id = f"{split[:2]}{i:06d}"
            _save(base / "images" / f"{image_id}.jpg", _image(rng, c, len(names)))
            lines.append(f"{image_id} {names[c]}")
        (base / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")


def _caltech101(root: Path, rng, train: int, test: int) -> None:
    base = root / "caltech101" / "101_ObjectCategories"
    folders = list(cn.CALTECH101)
    for c, folder in enumerate(folders):
        for i in range(train + test):
            _save(base / folder / f"image_{i + 1:04d}.jpg", _image(rng, c, len(folders)))
    _save(base / "BACKGROUND_Google" / "image_0001.jpg", _image(rng, 0, 1))


def _cifar100(root: Path, rng, train: int, test: int) -> None:
    base = root / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    names = [f"class_{c:03d}" for c in range(100)]
    for split, per_class in (("train", train), ("test", test)):
        labels = _labels(100, per_class)
        data = np.stack(
            [np.asarray(_image(rng, c, 100).resize((32, 32))) for c in labels]
        ).transpose(0, 3, 1, 2)
        entry = {"data": data.reshape(len(labels), -1), "fine_labels": labels}
        with open(base / split, "wb") as f:
            pickle.dump(entry, f)
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": names, "coarse_label_names": []}, f)


def _dtd(root: Path, rng, train: int, test: int) -> None:
    base = root / "dtd" / "dtd"
    names = [f"texture{c:02d}" for c in range(cn.NUM_CLASSES["DTD"])]
    (base / "labels").mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", train), ("val", 1), ("test", test)):
        lines = []
        for i, c in enumerate(_labels(len(names), per_class)):
            name = f"{names[c]}_{split}_{i:04d}.jpg"
            _save(base / "images" / names[c] / name, _image(rng, c, len(names)))
            lines.append(f"{names[c]}/{name}")
        (base / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")


def _eurosat(root: Path, rng, train: int, test: int) -> None:
    base = root / "eurosat" / "2750"
    for c, folder in enumerate(cn.EUROSAT):
        for i in range(train + test):
            _save(base / folder / f"{folder}_{i + 1}.jpg", _image(rng, c, len(cn.EUROSAT)))


def _flowers(root: Path, rng, train: int, test: int) -> None:
    from scipy.io import savemat

    base = root / "flowers-102"
    n = cn.NUM_CLASSES["Flowers"]
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    for key, per_class in (("trnid", train), ("valid", 1), ("tstid", test)):
        for c in _labels(n, per_class):
            labels.append(c + 1)
            ids[key].append(len(labels))
            _save(base / "jpg" / f"image_{len(labels):05d}.jpg", _image(rng, c, n))
    savemat(base / "imagelabels.mat", {"labels": np.array([labels])})
    savemat(base / "setid.mat", {k: np.array([v]) for k, v in ids.items()})


def _food(root: Path, rng, train: int, test: int) -> None:
    base = root / "food-101"
    names = [f"dish_{c:03d}" for c in range(cn.NUM_CLASSES["Food"])]
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", train), ("test", test)):
        meta: dict[str, list[str]] = {name: [] for name in names}
        for i, c in enumerate(_labels(len(names), per_class)):
            rel = f"{names[c]}/{split}{i:05d}"
            _save(base / "images" / f"{rel}.jpg", _image(rng, c, len(names)))
            meta[names[c]].append(rel)
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))


def _idx(path: Path, array: np.ndarray) -> None:
    magic = 0x0800 | array.ndim  # unsigned bytes
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _mnist(root: Path, rng, train: int, test: int) -> None:
    base = root / "MNIST" / "raw"
    base.mkdir(parents=True, exist_ok=True)
    for prefix, per_class in (("train", train), ("t10k", test)):
        labels = np.array(_labels(10, per_class))
        images = np.stack(
            [np.asarray(_image(rng, c, 10).convert("L").resize((28, 28))) for c in labels]
        )
        _idx(base / f"{prefix}-images-idx3-ubyte", images)
        _idx(base / f"{prefix}-labels-idx1-ubyte", labels)


def _pets(root: Path, rng, train: int, test: int) -> None:
    base = root / "oxford-iiit-pet"
    n = cn.NUM_CLASSES["OxfordPet"]
    # cats capitalised, dogs lower case, as in the real image ids
    breeds = [f"Cat_breed_{c:02d}" if c % 3 == 0 else f"dog_breed_{c:02d}" for c in range(n)]
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for split, per_class in (("trainval", train), ("test", test)):
        lines = []
        for i, c in enumerate(_labels(n, per_class)):
            image_id = f"{breeds[c]}_{split}{i}"
            _save(base / "images" / f"{image_id}.jpg", _image(rng, c, n))
            species = 1 if breeds[c][0].isupper() else 2
            lines.append(f"{image_id} {c + 1} {species} {c + 1}")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")


def _cars(root: Path, rng, train: int, test: int) -> None:
    from scipy.io import savemat

    base = root / "stanford_cars"
    n = cn.NUM_CLASSES["StanfordCars"]
    names = np.array([f"Make Model {c:03d} 2012" for c in range(n)], dtype=object)
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    for split, per_class, mat in (
        ("train", train, base / "devkit" / "cars_train_annos.mat"),
        ("test", test, base / "cars_test_annos_withlabels.mat"),
    ):
        labels = _labels(n, per_class)
        annos = np.zeros((1, len(labels)), dtype=[("fname", object), ("class", object)])
        for i, c in enumerate(labels):
            fname = f"{i + 1:05d}.jpg"
            _save(base / f"cars_{split}" / fname, _image(rng, c, n))
            annos[0, i] = (fname, c + 1)
        savemat(mat, {"annotations": annos})


def _sun397(root: Path, rng, train: int, test: int) -> None:
    base = root / "SUN397"
    n = cn.NUM_CLASSES["SUN397"]
    # two-level names like the real "/b/bakery/shop" for every fifth class
    classes = [f"/s/scene_{c:03d}" + ("/indoor" if c % 5 == 0 else "") for c in range(n)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("\n".join(classes) + "\n")
    for c, name in enumerate(classes):
        for i in range(train + test):
            _save(base / name.lstrip("/") / f"sun_{c:03d}{i:03d}.jpg", _image(rng, c, n))


BUILDERS = {
    "Aircraft": _aircraft,
    "Caltech101": _caltech101,
    "CIFAR100": _cifar100,
    "DTD": _dtd,
    "EuroSAT": _eurosat,
    "Flowers": _flowers,
    "Food": _food,
    "MNIST": _mnist,
    "OxfordPet": _pets,
    "StanfordCars": _cars,
    "SUN397": _sun397,
}


def make_fake_mtil(
    root: str | os.PathLike,
    datasets: Iterable[str] | None = None,
    train_per_class: int = 2,
    test_per_class: int = 1,
    seed: int = 0,
) -> Path:
    """Write fake copies of ``datasets`` (default: all 11) under ``root``; returns ``root``.

    ``train_per_class`` / ``test_per_class`` images per class go to each split (for Caltech101,
    EuroSAT and SUN397, which have no split of their own, their sum goes into the one folder and
    the loader's 80 / 20 split, ZSCL's, divides them). Deterministic for a seed. All 11 at the
    defaults: about 2,900 tiny JPEGs, a few seconds.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in datasets or DATASETS:
        if name not in BUILDERS:
            raise InputError(f"unknown MTIL dataset {name!r}; valid names: {', '.join(BUILDERS)}")
        rng = np.random.default_rng([seed, list(BUILDERS).index(name)])
        BUILDERS[name](root, rng, train_per_class, test_per_class)
    return root


def write_narrow_vit(
    folder: str | os.PathLike, image_size: int = 224, patch_size: int = 32
) -> Path:
    """Write the open_clip config of a narrow ViT (2 + 2 layers, widths 64 and 32) taking
    ``image_size`` px, and return its path: pass it as ``--backbone`` to run ViT-B/16's code
    path (same open_clip factory, same tokenizer) a few thousand times cheaper."""
    config = {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": image_size,
            "layers": 2,
            "width": 64,
            "head_width": 32,
            "patch_size": patch_size,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 1,
            "layers": 2,
        },
    }
    path = Path(folder) / f"narrow-vit-{image_size}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1))
    return path


def save_random_weights(backbone: str, path: str | os.PathLike, seed: int = 0) -> Path:
    """Save a randomly initialised open_clip ``backbone`` (a name or a config file) as a local
    weights file (bf16, half the size), as a downloaded checkpoint would be passed."""
    import open_clip
    import torch

    from clviz.backbone import random_init_quietly, register_config_file

    torch.manual_seed(seed)
    with random_init_quietly():
        model = open_clip.create_model(register_config_file(str(backbone)))
    state = {k: v.bfloat16() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    return Path(path)
