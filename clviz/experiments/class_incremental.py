"""Class-incremental learning: one label space that grows step by step, as in ZSCL and MoE-Adapters.

A pool of classes (CIFAR-100, or every class of an embedded stream) is cut into ``steps`` groups in
a fixed order. Step t trains on the images of its own classes only; after it, the model is tested
on the test images of ALL classes seen so far, each classified among all of them (one task whose
class names are the union). ``Avg`` is the mean of those accuracies over the steps, ``Last`` the
accuracy after the final step: the two numbers the MoE-Adapters and ZSCL papers report for
CIFAR-100 in 10, 20 and 50 steps.

Any registered method runs unchanged through the one loop (:func:`clviz.core.loop.run_stream`):
each step is a :class:`~clviz.core.task.Task` to learn, and the evaluation
(:class:`~clviz.core.evaluation.SeenClasses`) predicts on the union. Our reading for methods
that route by task identity: the union task is a task they have not learned, so
``moe-adapters-taskid`` routes it with its newest router (no task id exists in class-incremental
learning), while ``moe-adapters`` lets DDAS pick a router per image, as the reference does.
Training uses the current step's class prompts only (the loss never sees earlier classes). The
class order of CIFAR-100 is the one in the MoE-Adapters reference
(``cil/class_orders/cifar100.yaml``, shared with ZSCL's class-incremental code and earlier CIL
work); the embedded world's order is a fixed shuffle by seed 1993. Runs live in the run store
like every other run (``results.json``, checkpoints, resume).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clviz.backbone import load_backbone
from clviz.core.config import RunConfig
from clviz.core.device import place
from clviz.core.evaluation import SeenClasses
from clviz.core.formats import make_format
from clviz.core.loop import run_stream
from clviz.core.result import RunResult
from clviz.core.store import RunStore
from clviz.core.task import Task
from clviz.methods import build_method, get_method
from clviz.methods.zeroshot import ZeroShot
from clviz.world.tasks import WORLD_IMAGE_SIZE, make_task, stream_spec

CIFAR100_ORDER = (
    87, 0, 52, 58, 44, 91, 68, 97, 51, 15, 94, 92, 10, 72, 49, 78, 61, 14, 8, 86, 84, 96, 18, 24,
    32, 45, 88, 11, 4, 67, 69, 66, 77, 47, 79, 93, 29, 50, 57, 83, 17, 81, 41, 12, 37, 59, 25, 20,
    80, 73, 1, 28, 6, 46, 62, 82, 53, 9, 31, 75, 38, 63, 33, 74, 27, 22, 36, 3, 16, 21, 60, 19, 70,
    90, 89, 43, 5, 42, 65, 76, 40, 30, 23, 85, 2, 95, 56, 48, 71, 64, 98, 13, 99, 7, 34, 55, 54,
    26, 35, 39,
)  # fmt: skip
WORLD_ORDER_SEED = 1993
DATASETS = ("world", "cifar100")


@dataclass
class ClassPool:
    """Every class of a class-incremental benchmark with its images (labels are pool ids)."""

    name: str
    classnames: tuple[str, ...]
    templates: tuple[tuple[str, ...], ...]  # per class, all of one length
    train_images: Any
    train_labels: torch.Tensor
    test_images: Any
    test_labels: torch.Tensor
    order: tuple[int, ...]


def _take(images, idx: torch.Tensor):
    """A subset of a uint8 tensor, or a lazy subset of a lazy store."""
    return images[idx] if isinstance(images, torch.Tensor) else images.take(idx)


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def world_pool(
    stream: str = "default", seed: int = 0, image_size: int = 32, test_per_class: int = 20
) -> ClassPool:
    """Every class of an embedded stream in one pool; a name used by two tasks is qualified
    with its task (``"ring (textures)"``), and each class keeps its task's templates.

    ``test_per_class`` is smaller than the task-incremental default (40) because the union is
    evaluated after every step: our choice, to keep a CPU run within minutes."""
    spec = stream_spec(stream)
    tasks = [
        make_task(t, seed, image_size, spec.train_per_class, test_per_class) for t in spec.tasks
    ]
    counts = Counter(c for t in tasks for c in t.classnames)
    width = max(len(t.templates) for t in tasks)
    names, templates, offset = [], [], 0
    train_x, train_y, test_x, test_y = [], [], [], []
    for t in tasks:
        names += [c if counts[c] == 1 else f"{c} ({t.name})" for c in t.classnames]
        padded = tuple(t.templates[i % len(t.templates)] for i in range(width))
        templates += [padded] * t.num_classes
        train_x.append(t.train_images)
        test_x.append(t.test_images)
        train_y.append(t.train_labels + offset)
        test_y.append(t.test_labels + offset)
        offset += t.num_classes
    order = np.random.default_rng(WORLD_ORDER_SEED).permutation(offset)
    return ClassPool(
        f"world:{stream}",
        tuple(names),
        tuple(templates),
        torch.cat(train_x),
        _cat(train_y),
        torch.cat(test_x),
        _cat(test_y),
        tuple(int(c) for c in order),
    )


def cifar100_pool(data_root: str | None = None, image_size: int | None = None) -> ClassPool:
    """CIFAR-100 from ``data_root`` (torchvision layout), lazily, in the reference class order."""
    from clviz.data.mtil import make_mtil_task

    t = make_mtil_task("CIFAR100", data_root, image_size)
    return ClassPool(
        "cifar100",
        t.classnames,
        (t.templates,) * t.num_classes,
        t.train_images,
        t.train_labels,
        t.test_images,
        t.test_labels,
        CIFAR100_ORDER,
    )


def load_pool(dataset: str, config: RunConfig, test_per_class: int | None = None) -> ClassPool:
    """The class pool of ``dataset`` (``world`` uses ``config.stream``'s tasks;
    ``test_per_class`` overrides its 20 test images per class)."""
    if dataset == "world":
        n_test = 20 if test_per_class is None else test_per_class
        return world_pool(config.stream, config.seed, config.image_size or WORLD_IMAGE_SIZE, n_test)
    if dataset == "cifar100":
        return cifar100_pool(config.data_root, config.image_size)
    raise ValueError(f"unknown class-incremental dataset {dataset!r}; valid: {', '.join(DATASETS)}")


def split_classes(order: tuple[int, ...], steps: int) -> list[list[int]]:
    """``order`` cut into ``steps`` consecutive groups (sizes differ by at most one)."""
    if not 1 <= steps <= len(order):
        raise ValueError(f"steps must be between 1 and {len(order)} classes, got {steps}")
    return [[int(c) for c in g] for g in np.array_split(np.array(order), steps)]


def _task(pool: ClassPool, name: str, classes: list[int], train: bool) -> Task:
    """A task over ``classes`` (pool ids, in this order): their train and test images, labels
    renumbered to positions in ``classes``. Without ``train`` the train split is left empty."""
    lookup = torch.full((len(pool.classnames),), -1, dtype=torch.long)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    tr = torch.nonzero(lookup[pool.train_labels] >= 0).flatten() if train else torch.zeros(0).long()
    te = torch.nonzero(lookup[pool.test_labels] >= 0).flatten()
    return Task(
        name,
        tuple(pool.classnames[c] for c in classes),
        pool.templates[classes[0]],
        _take(pool.train_images, tr),
        lookup[pool.train_labels[tr]],
        _take(pool.test_images, te),
        lookup[pool.test_labels[te]],
        pool.name,
        f"{len(classes)} classes of {pool.name}",
        class_templates=tuple(pool.templates[c] for c in classes),
    )


def build_steps(pool: ClassPool, steps: int) -> tuple[list[Task], list[Task]]:
    """(training task of each step, evaluation task over all classes seen after each step)."""
    groups = split_classes(pool.order, steps)
    train, seen, so_far = [], [], []
    for t, group in enumerate(groups):
        so_far = so_far + group
        train.append(_task(pool, f"{pool.name}-step{t + 1}", group, train=True))
        seen.append(_task(pool, f"{pool.name}-seen{t + 1}", so_far, train=False))
    return train, seen


def class_incremental_store(
    config: RunConfig,
    dataset: str,
    steps: int,
    test_per_class: int | None = None,
    out_dir: str | Path | None = None,
    *,
    root: str | Path | None = None,
    force: bool = False,
) -> RunStore:
    """Where a class-incremental run lives: ``out_dir``, or ``<root>/class-incremental/
    <method>_<dataset>-<steps>steps_seed<seed>_<hash>``."""
    identity = {
        "protocol": "class-incremental",
        "dataset": dataset,
        "steps": steps,
        "test_per_class": test_per_class,
        "config": config.as_dict(),
    }
    if out_dir is not None:
        return RunStore(out_dir, identity, force=force)
    name = f"{config.method}_{dataset}-{steps}steps_seed{config.seed}"
    return RunStore.named(name, identity, group="class-incremental", root=root, force=force)


def run_class_incremental(
    config: RunConfig,
    dataset: str = "world",
    steps: int = 10,
    out_dir: str | Path | None = None,
    *,
    root: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    test_per_class: int | None = None,
) -> RunResult:
    """Learn ``dataset``'s classes in ``steps`` steps with ``config.method`` (or reuse the
    finished run). The result's matrix has one column, the accuracy over all classes seen so
    far after each step; ``metrics`` gives Avg and Last, ``zero_shot`` the untouched backbone
    on the same evaluations, ``extra`` the class order and the classes of each step."""
    get_method(config.method)
    config, device = place(config)
    store = class_incremental_store(
        config, dataset, steps, test_per_class, out_dir, root=root, force=force
    )
    finished = store.finished()
    if finished is not None:
        return finished
    torch.manual_seed(config.seed)
    pool = load_pool(dataset, config, test_per_class)
    train_tasks, seen_tasks = build_steps(pool, steps)
    model, _, tokenizer = load_backbone(config.backbone, config.pretrained, device)
    evaluation = SeenClasses(
        [make_format(t, tokenizer) for t in seen_tasks], config.eval_batch_size
    )
    zero_shot = evaluation.reference(ZeroShot(model, tokenizer))
    method = build_method(config.method, model, tokenizer, config.train, config.options)
    extra: dict[str, Any] = {
        "dataset": dataset,
        "steps": steps,
        "class_order": [pool.classnames[c] for c in pool.order],
        "step_classes": [list(t.classnames) for t in train_tasks],
        "seen_classes": [t.num_classes for t in seen_tasks],
    }
    return run_stream(
        method,
        train_tasks,
        evaluation,
        seed=config.seed,
        store=store,
        zero_shot=zero_shot,
        stream=pool.name,
        config=config.as_dict(),
        extra=extra,
        progress=progress,
    )
