"""Named configurations: the embedded CPU default, a classroom GPU setting, and the real MTIL
setting of the papers.

``make_config(profile, method, ...)`` turns a profile into a :class:`RunConfig`.

The two profiles of the embedded world (``embedded``, ``classroom-gpu``) carry a *teaching
setting* (:data:`TEACHING_TRAIN`, :data:`TEACHING_OPTIONS`), sized so that every method visibly
learns each task within a lesson's budget (``CLVIZ_MODE=class``: 40 steps a task), on every
seed: training texts are the mean over every template (``prompts="ensemble"``, the classifier
evaluation uses; the references train on the first template, and on the embedded world that
mismatch made MoE-Adapters and ATLAS score *below* zero-shot right after learning a task);
MoE-Adapters learn at 5x their MTIL rate, and ATLAS at 5e-3 with its two stages given one and
two times the run's steps per task (its sites start away from the backbone and need them),
with the reference's optimiser (below; its warm-up and decay are what let it learn every task
on every seed).
Measured in ``benchmarks/RESULTS.md`` (*Class mode*); the ``mtil`` profile keeps the
references' settings.

``classroom-gpu`` is for a student with one consumer GPU: the embedded world drawn at 64 px
(four times the image tokens: an 8 x 8 patch grid), the bundled tiny CLIP on that grid
(``clviz-tiny-64``, its 4 x 4 position embeddings interpolated by open_clip; it was pretrained
at 32 px, so its zero-shot accuracy starts lower), 300 steps per task at batch 128. Our
choice, not a paper's; ``docs/devices.md`` has what was measured.
The ``mtil`` profile is open_clip ViT-B/16 (weights from a hub tag such as ``openai`` or a local
file), 224 px, on the real datasets, with the reference budgets and schedules:

- ZSCL (Thunderbeee/ZSCL ``mtil/scripts/ZSCL.sh``, ``src/args.py``): 1000 iterations per task,
  batch 64, label smoothing 0.2, per-task lr 1e-5 (5e-5 for Aircraft and MNIST), cosine decay
  after 100 warm-up steps (``utils.cosine_lr``, ``--warmup_length 100``), weight ensemble every
  100 iterations, L2 weight 1. Its baselines (``finetune.sh``, ``lwf.sh``,
  ``WiSE_finetune.sh``) use the same budget, rates and schedule; MulKI takes them too (our
  choice: its code is not public).
- MoE-Adapters (JiazuoYu/MoE-Adapters4CL ``mtil/scripts/train/
  train_full_shot_router11_experts22_1000iters.sh``): 1000 iterations, 22 experts, label
  smoothing 0.2, per-task lr (order I: 5e-3 1e-3 5e-3 1e-3 1e-4 1e-3 1e-3 1e-4 1e-3 1e-3 1e-3),
  the same cosine schedule. Few-shot (``train_few_shot_router11_experts22_1000iters.sh``,
  despite its name): 500 iterations per task at its own per-task rates (8e-3 5e-4 2e-4 5e-3
  1e-3 1e-3 1e-2 1e-4 1e-2 1e-2 1e-2).
- ATLAS (lihong2303/ATLAS ``Model/vilt_model.py``, ``Config/train_snlive.yaml``): linear decay
  to 0 after a 10% warm-up (``get_polynomial_decay_schedule_with_warmup``, power 1), AdamW with
  weight decay 0.01, betas (0.9, 0.98), eps 1e-4, lr 5e-4, plain cross-entropy
  (``nn.CrossEntropyLoss()``: no label smoothing). ATLAS was not run on MTIL by its authors;
  the budget is ZSCL's.

Per-task rates are keyed by dataset name (:data:`REFERENCE_TASK_LR`), so they follow a dataset
into order II or a subset stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from clviz.core.config import RunConfig, TrainConfig
from clviz.data.mtil import MTIL_ORDER_I
from clviz.errors import InputError


@dataclass(frozen=True)
class Profile:
    """A named setting: backbone, image size, default stream, and per-method budgets."""

    name: str
    description: str
    backbone: str
    pretrained: str | None
    image_size: int | None
    stream: str
    train: TrainConfig
    method_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    few_shot_steps: int | None = None  # training steps per task on a few-shot stream
    few_shot_method_train: dict[str, dict[str, Any]] = field(default_factory=dict)  # by method
    eval_batch_size: int = 256


def _by_dataset(*rates: float) -> dict[str, float]:
    return dict(zip(MTIL_ORDER_I, rates, strict=True))


REFERENCE_TASK_LR: dict[str, dict[str, float]] = {
    "zscl": _by_dataset(5e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 5e-5, 1e-5, 1e-5, 1e-5),
    "moe-adapters": _by_dataset(5e-3, 1e-3, 5e-3, 1e-3, 1e-4, 1e-3, 1e-3, 1e-4, 1e-3, 1e-3, 1e-3),
    "moe-adapters-fewshot": _by_dataset(
        8e-3, 5e-4, 2e-4, 5e-3, 1e-3, 1e-3, 1e-2, 1e-4, 1e-2, 1e-2, 1e-2
    ),
}  # order I in the reference scripts cited above; by dataset here
_COSINE = {"schedule": "cosine", "warmup_steps": 100}
_ZSCL = {**_COSINE, "task_lr": REFERENCE_TASK_LR["zscl"]}
_MOE = {**_COSINE, "task_lr": REFERENCE_TASK_LR["moe-adapters"], "steps": 1000, "batch_size": 64}
_ATLAS = {
    "schedule": "linear",
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "betas": (0.9, 0.98),
    "eps": 1e-4,
    "label_smoothing": 0.0,
}
TEACHING_TRAIN = TrainConfig(prompts="ensemble")
TEACHING_OPTIONS: dict[str, dict[str, Any]] = {
    "moe-adapters": {"lr": 5e-3},
    "moe-adapters-taskid": {"lr": 5e-3},
    "atlas": {"lr": 5e-3, "stage1_share": 1.0, "stage2_share": 2.0},
}  # the teaching setting of the embedded world (see the module's docstring)
PROFILES: dict[str, Profile] = {
    "embedded": Profile(
        "embedded",
        "bundled tiny CLIP at 32 px on the embedded world, CPU minutes (the default)",
        backbone="clviz-tiny",
        pretrained=None,
        image_size=None,
        stream="default",
        train=TEACHING_TRAIN,
        method_train={"atlas": _ATLAS},
        method_options=TEACHING_OPTIONS,
    ),
    "classroom-gpu": Profile(
        "classroom-gpu",
        "the embedded world at 64 px, 3x the steps, batch 128: one consumer GPU "
        "(a free notebook GPU) in about the CPU default's time",
        backbone="clviz-tiny-64",
        pretrained=None,
        image_size=64,
        stream="default",
        train=replace(TEACHING_TRAIN, steps=300, batch_size=128),
        method_train={"atlas": _ATLAS},
        method_options=TEACHING_OPTIONS,
    ),
    "mtil": Profile(
        "mtil",
        "open_clip ViT-B/16 at 224 px on the real MTIL datasets, reference budgets (GPU)",
        backbone="ViT-B-16",
        pretrained="openai",
        image_size=224,
        stream="mtil",
        train=TrainConfig(steps=1000, batch_size=64, lr=1e-5, label_smoothing=0.2),
        method_train={
            **{m: _ZSCL for m in ("finetune", "lwf", "wise-ft", "zscl", "mulki")},
            "moe-adapters": _MOE,
            "moe-adapters-taskid": _MOE,
            "atlas": _ATLAS,
        },
        method_options={
            "zscl": {
                "we_every": 100,
                "l2": 1.0,
                "reference_batch": 64,
                "allow_embedded_reference": False,
            },
            "moe-adapters": {  # rates: the reference's per-task table (_MOE's task_lr)
                "experts": 22,
                "ddas_pool": "mean",
                "allow_embedded_generic": False,
            },
            "moe-adapters-taskid": {"experts": 22},
            "atlas": {"lr": 5e-4},
        },
        few_shot_steps=500,
        few_shot_method_train={
            m: {"task_lr": REFERENCE_TASK_LR["moe-adapters-fewshot"]}
            for m in ("moe-adapters", "moe-adapters-taskid")
        },
        eval_batch_size=128,
    ),
}

PROFILE_ENV = "CLVIZ_PROFILE"


def default_profile() -> str:
    """The profile notebooks and the main job use: ``$CLVIZ_PROFILE``, else ``embedded``."""
    name = os.environ.get(PROFILE_ENV) or "embedded"
    get_profile(name)  # a typo fails here, naming the valid profiles
    return name


def get_profile(name: str) -> Profile:
    """The profile called ``name``; the error lists the valid names."""
    if name not in PROFILES:
        raise InputError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def make_config(
    profile: str | Profile,
    method: str,
    stream: str | None = None,
    seed: int = 0,
    *,
    pretrained: str | None = None,
    data_root: str | None = None,
    steps: int | None = None,
    options: dict[str, Any] | None = None,
    **train_overrides: Any,
) -> RunConfig:
    """The :class:`RunConfig` of ``method`` under ``profile``; explicit arguments win.

    ``pretrained`` replaces the profile's weights (a tag or a local file); ``steps`` and
    ``train_overrides`` (``lr=...``, ``batch_size=...``) replace its training budget; ``options``
    are merged over the profile's method options. A few-shot stream uses ``few_shot_steps``.
    """
    p = profile if isinstance(profile, Profile) else get_profile(profile)
    stream = stream or p.stream
    train = replace(p.train, **p.method_train.get(method, {}))
    if p.few_shot_steps is not None and stream.endswith("fewshot"):
        train = replace(train, steps=p.few_shot_steps, **p.few_shot_method_train.get(method, {}))
    if steps is not None:
        train = replace(train, steps=steps)
    if train_overrides:
        train = replace(train, **train_overrides)
    return RunConfig(
        method=method,
        stream=stream,
        seed=seed,
        backbone=p.backbone,
        pretrained=pretrained if pretrained is not None else p.pretrained,
        train=train,
        options={**p.method_options.get(method, {}), **(options or {})},
        eval_batch_size=p.eval_batch_size,
        data_root=data_root,
        image_size=p.image_size,
    )
