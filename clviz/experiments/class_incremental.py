"""Class-incremental learning: one label space that grows step by step, as in ZSCL and MoE-Adapters.

A pool of classes (CIFAR-100, or every class of an embedded stream) is cut into ``steps`` groups in
a fixed order. Step t trains on the images of its own classes only; after it, the model is tested
on the test images of ALL classes seen so far, each classified among all of them (one task whose
class names are the union). ``Avg`` is the mean of those accuracies over the steps, ``Last`` the
accuracy after the final step: the two numbers the MoE-Adapters and ZSCL papers report for
CIFAR-100 in 10, 20 and 50 steps.

Any registered method runs unchanged through the one loop (:func:`clviz.core.loop.run_stream`):
each step is a :class:`~clviz.core.task.Task` to learn, and the evaluation
(:class:`~clviz.core.evaluation.SeenClasses`) predicts on the union. Training uses the current
step's class prompts only (the loss never sees earlier classes).

**The reference recipe** (:data:`REFERENCE`, :func:`reference_config`) is how the MoE-Adapters
reference's ``cil/`` code trains (``continual_clip/models.py``, ``configs/class/cifar100_10-10-
MoE-Adapters.yaml``): every class is prompted with the one template ``"a bad photo of a {}."``
in training and at test; each step runs one epoch, ``ceil(images / 128) + 1`` iterations of
batch 128, AdamW with a cosine rate after 30 warm-up steps. MoE-Adapters there is ONE router
shared by every step, 2 experts, top-2, no activate-freeze, no DDAS, label smoothing 0, rate
1e-3 (``moe-adapters`` here; it needs no task id). Fine-tuning and ZSCL follow ZSCL's ``cil/``
configs in what they share with it (batch, epoch, warm-up, template, label smoothing 0.2).
Where clviz differs: batches are drawn with replacement (the reference walks a shuffled epoch),
and on the embedded world fine-tuning and ZSCL keep the embedded profile's rate (the
reference's 7.1e-6 is for a pretrained ViT-B/16; the ``mtil`` profile uses it).

``moe-adapters-ddas`` is a clviz extension, not the reference: per-step routers with
activate-freeze, and DDAS picks a router per test image (or the untouched backbone).

**The embedded recipe** (``Recipe()``): each class keeps its task's templates and every step
trains ``config.train.steps`` steps; any registered method runs by its own name. The class order
of CIFAR-100 is the one in the MoE-Adapters reference (``cil/class_orders/cifar100.yaml``, shared
with ZSCL's class-incremental code and earlier CIL work); the embedded world's order is a fixed
shuffle by seed 1993. Runs live in the run store like every other run (``results.json``,
checkpoints, resume).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clviz.backbone import load_backbone
from clviz.core.config import RunConfig, TrainConfig
from clviz.core.device import place
from clviz.core.evaluation import SeenClasses
from clviz.core.formats import make_format
from clviz.core.loop import run_stream
from clviz.core.result import RunResult
from clviz.core.store import RunStore
from clviz.core.task import Task
from clviz.errors import InputError
from clviz.experiments.profiles import make_config
from clviz.methods import METHODS, build_method, get_method
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


@dataclass(frozen=True)
class Recipe:
    """How each class step trains and is prompted.

    ``template``: one prompt template for every class, in training and at test (None: each
    class keeps its task's templates). ``epochs``: each step trains
    ``epochs * ceil(images / batch) + 1`` iterations, as the reference's loop
    ``range(total_iterations + 1)`` (None: ``config.train.steps`` per step)."""

    template: str | None = None
    epochs: int | None = None

    def steps_for(self, images: int, batch_size: int) -> int:
        """Training iterations of a step with ``images`` training images."""
        assert self.epochs is not None
        return self.epochs * math.ceil(images / batch_size) + 1


REFERENCE_TEMPLATE = "a bad photo of a {}."
REFERENCE = Recipe(template=REFERENCE_TEMPLATE, epochs=1)
RECIPES = {"reference": REFERENCE, "embedded": Recipe()}
VIT_B16_CIL_LR = 7.1e-6  # ZSCL's cil/configs/class/cifar100_10-10-*.yaml


def recipe_methods() -> list[str]:
    """The methods with a class-incremental recipe (their ``class_incremental`` setting)."""
    return [name for name, cls in METHODS.items() if cls.class_incremental is not None]


def reference_config(
    method: str,
    profile: str = "embedded",
    stream: str | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> RunConfig:
    """``method`` as the reference's ``cil/`` code trains it under ``profile`` (``kwargs`` go to
    :func:`~clviz.experiments.profiles.make_config`): batch 128, a cosine rate after 30 warm-up
    steps, and the method's own :class:`~clviz.core.method.ClassIncrementalSetting` (its
    options and label smoothing: ``moe-adapters-taskid`` is the reference's one router over 2
    experts, no activate-freeze, label smoothing 0; ``moe-adapters`` is clviz's DDAS
    extension); ``options`` are merged over the setting's. Run it with ``recipe=REFERENCE``."""
    setting = get_method(method).class_incremental
    if setting is None:
        raise InputError(
            f"no class-incremental reference recipe for {method!r}; valid: "
            f"{', '.join(recipe_methods())} (any registered method runs with recipe=Recipe(), "
            "the embedded recipe)"
        )
    config = make_config(
        profile, method, stream, seed, options={**setting.options, **(options or {})}, **kwargs
    )
    train = TrainConfig(
        steps=config.train.steps,
        batch_size=128,
        lr=VIT_B16_CIL_LR if profile == "mtil" else config.train.lr,
        label_smoothing=setting.label_smoothing,
        schedule="cosine",
        warmup_steps=30,
    )
    return replace(config, train=train)


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


def load_pool(
    dataset: str,
    config: RunConfig,
    test_per_class: int | None = None,
    template: str | None = None,
) -> ClassPool:
    """The class pool of ``dataset`` (``world`` uses ``config.stream``'s tasks;
    ``test_per_class`` overrides its 20 test images per class); ``template`` replaces every
    class's templates by that one."""
    if dataset == "world":
        n_test = 20 if test_per_class is None else test_per_class
        size = config.image_size or WORLD_IMAGE_SIZE
        pool = world_pool(config.stream, config.seed, size, n_test)
    elif dataset == "cifar100":
        pool = cifar100_pool(config.data_root, config.image_size)
    else:
        raise InputError(
            f"unknown class-incremental dataset {dataset!r}; valid: {', '.join(DATASETS)}"
        )
    if template is not None:
        pool = replace(pool, templates=((template,),) * len(pool.classnames))
    return pool


def step_sizes(pool: ClassPool, steps: int) -> list[int]:
    """Training images of each step."""
    counts = torch.bincount(pool.train_labels, minlength=len(pool.classnames))
    return [int(counts[group].sum()) for group in split_classes(pool.order, steps)]


def split_classes(order: tuple[int, ...], steps: int) -> list[list[int]]:
    """``order`` cut into ``steps`` consecutive groups (sizes differ by at most one)."""
    if not 1 <= steps <= len(order):
        raise InputError(f"steps must be between 1 and {len(order)} classes, got {steps}")
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
    recipe: Recipe = Recipe(),
    root: str | Path | None = None,
    force: bool = False,
) -> RunStore:
    """Where a class-incremental run lives: ``out_dir``, or ``<root>/class-incremental/
    <method>_<dataset>-<steps>steps_seed<seed>[_<recipe>]_<hash>``."""
    identity = {
        "protocol": "class-incremental",
        "dataset": dataset,
        "steps": steps,
        "test_per_class": test_per_class,
        "config": config.as_dict(),
    }
    if recipe != Recipe():
        identity["recipe"] = asdict(recipe)
    if out_dir is not None:
        return RunStore(out_dir, identity, force=force)
    name = f"{config.method}_{dataset}-{steps}steps_seed{config.seed}"
    name += "_reference" if recipe == REFERENCE else ""
    return RunStore.named(name, identity, group="class-incremental", root=root, force=force)


def run_class_incremental(
    config: RunConfig,
    dataset: str = "world",
    steps: int = 10,
    out_dir: str | Path | None = None,
    *,
    recipe: Recipe = Recipe(),
    root: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    test_per_class: int | None = None,
) -> RunResult:
    """Learn ``dataset``'s classes in ``steps`` steps with ``config.method`` (or reuse the
    finished run), following ``recipe`` (:data:`REFERENCE` with :func:`reference_config` for
    the reference's ``cil/`` recipe). The result's matrix has one column, the accuracy over
    all classes seen so far after each step; ``metrics`` gives Avg and Last, ``zero_shot`` the
    untouched backbone on the same evaluations, ``extra`` the class order, the classes of each
    step and its training iterations."""
    get_method(config.method)
    config, device = place(config)
    store = class_incremental_store(
        config, dataset, steps, test_per_class, out_dir, recipe=recipe, root=root, force=force
    )
    finished = store.finished()
    if finished is not None:
        return finished
    torch.manual_seed(config.seed)
    pool = load_pool(dataset, config, test_per_class, recipe.template)
    train_tasks, seen_tasks = build_steps(pool, steps)
    if recipe.epochs is not None:
        iterations = [recipe.steps_for(n, config.train.batch_size) for n in step_sizes(pool, steps)]
        config = replace(config, train=replace(config.train, task_steps=tuple(iterations)))
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
        "recipe": asdict(recipe),
        "iterations": [config.train.steps_for(i) for i in range(steps)],
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
