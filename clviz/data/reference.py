"""Reference data for distillation on the real benchmark: an image folder and a caption file.

ZSCL distils on ImageNet's training images and Conceptual Captions' sentences
(``--ref-dataset ImageNet --ref-sentences conceptual_captions``). clviz reads them from disk:

- an **image folder** in ImageNet's layout (``<folder>/<class>/<image>.JPEG``; any depth works),
  every image file in sorted path order, read lazily at the model's input size;
- a **caption file**: one caption per line, or Conceptual Captions' ``.tsv`` (the caption is
  the first tab-separated field); blank lines are skipped.
"""

from __future__ import annotations

from pathlib import Path

from clviz.data.lazy import FileReader, LazyImages

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_folder(folder: str | Path, size: int) -> LazyImages:
    """Every image under ``folder`` (sorted paths) as a lazy ``N x 3 x size x size`` store."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"reference image folder {folder} does not exist; point reference_folder at an "
            "image folder such as ImageNet's train/ (one sub-folder per class)"
        )
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"reference image folder {folder} holds no image files ({IMAGE_SUFFIXES})")
    return LazyImages(FileReader(paths), size)


def read_captions(path: str | Path, limit: int | None = None) -> list[str]:
    """The first ``limit`` distinct captions of ``path`` (all of them when None), in file order."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
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
        raise ValueError(f"caption file {path} holds no captions")
    return list(captions)
