"""Reference data for distillation on the real benchmark: an image folder and a caption file.

ZSCL distils on ImageNet's training images and Conceptual Captions' sentences
(``--ref-dataset ImageNet --ref-sentences conceptual_captions``). clviz reads them from disk:

- an **image folder** in ImageNet's layout (``<folder>/<class>/<image>.JPEG``; any depth works),
  every image file in sorted path order, read lazily at the model's input size;
- a **caption file**: one caption per line, or Conceptual Captions' ``.tsv`` (the caption is
  the first tab-separated field); blank lines are skipped.

Without them, the embedded world's pretraining corpus stands in (:func:`load_reference`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from clviz.core.method import Reference, ReferenceSpec
from clviz.data.lazy import FileReader, LazyImages
from clviz.errors import InputError, MissingFileError
from clviz.world.corpus import make_corpus

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_folder(folder: str | Path, size: int) -> LazyImages:
    """Every image under ``folder`` (sorted paths) as a lazy ``N x 3 x size x size`` store."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MissingFileError(
            f"reference image folder {folder} does not exist; point reference_folder at an "
            "image folder such as ImageNet's train/ (one sub-folder per class)"
        )
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"reference image folder {folder} holds no image files ({IMAGE_SUFFIXES})")
    return LazyImages(FileReader(paths), size)


def read_captions(path: str | Path, limit: int | None = None) -> list[str]:
    """The first ``limit`` distinct captions of ``path`` (all of them when None), in file order."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(
            f"caption file {path} does not exist; point caption_file at a text file with one "
            "caption per line (or Conceptual Captions' .tsv)"
        )
    captions: dict[str, None] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            caption = line.split("\t", 1)[0].strip()
            if caption:
                captions[caption] = None
            if limit is not None and len(captions) >= limit:
                break
    if not captions:
        raise InputError(f"caption file {path} holds no captions")
    return list(captions)


def load_reference(spec: ReferenceSpec, size: int) -> Reference:
    """The reference data ``spec`` describes, images at ``size`` px (the model's input),
    read when the method first uses it."""
    return Reference(functools.partial(_read_reference, spec, size))


def _read_reference(spec: ReferenceSpec, size: int) -> tuple[torch.Tensor | LazyImages, list[str]]:
    from_corpus = {
        "images": spec.images if spec.image_folder is None else 0,
        "captions": spec.captions if spec.caption_file is None else 0,
    }
    images, captions = torch.zeros(0, 3, size, size, dtype=torch.uint8), []
    if max(from_corpus.values()):
        drawn, texts = make_corpus(
            max(from_corpus.values()), spec.corpus_seed, spec.corpus_size or size, progress=False
        )
        images, captions = drawn[: from_corpus["images"]], list(dict.fromkeys(texts))
    if spec.image_folder is not None:
        images = image_folder(spec.image_folder, size)
        if spec.draw_from_folder:
            seed = torch.Generator().manual_seed(spec.folder_seed)
            images = images.take(
                torch.randperm(len(images), generator=seed)[: spec.images].sort().values
            )
    if spec.caption_file is not None:
        captions = read_captions(spec.caption_file, spec.captions)
    return images, captions[: spec.captions]
