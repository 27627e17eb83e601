"""A close look at one MulKI task for notebook 06: what each stage computes, on real batches.

:func:`walk_through` learns a first task (so the previous-task teacher differs from the
pretrained one), then trains the second while keeping the quantities the figures show: the
prototype-to-text similarity matrix before and after, one image's relation distributions from
both teachers and the student, and the per-sample teacher weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from clviz.backbone import load_backbone
from clviz.methods import TrainConfig, get_method, make_options
from clviz.mulki.losses import relation_distribution, relation_logits
from clviz.world.tasks import Task
from clviz.zeroshot import class_text_features, embed_images


@torch.no_grad()
def _relations(method, image: torch.Tensor, label: int, task: Task) -> dict[str, Any]:
    """Intra- (to prototypes) and inter-modal (to class texts) distributions of one image."""
    o = method.options
    scale = method.model.logit_scale.exp()
    protos = method.prototypes.detach()
    out = {}
    sources = [("pretrained teacher", method._initial), ("previous teacher", method._previous)]
    sources.append(("student", method.model))
    for name, model in sources:
        model.eval()
        feats = embed_images(model, image[None])
        text = class_text_features(model, method.tokenizer, task)
        out[name] = {
            "intra": relation_distribution(feats, protos, scale, o.temperature)[0].tolist(),
            "inter": relation_distribution(feats, text, scale, o.temperature)[0].tolist(),
            "confidence": F.softmax(relation_logits(feats, text, scale), -1)[0, label].item(),
        }
    return out


@torch.no_grad()
def _similarity(method, task: Task) -> list[list[float]]:
    text = class_text_features(method.model, method.tokenizer, task)
    return (F.normalize(method.prototypes.detach(), dim=-1) @ text.T).tolist()


def walk_through(
    first: Task, second: Task, steps: int, options: dict[str, Any] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Learn ``first``, then ``second`` with MulKI, keeping what notebook 06 plots."""
    model, _, tokenizer = load_backbone()
    cls = get_method("mulki")
    method = cls(
        copy.deepcopy(model), tokenizer, TrainConfig(steps=steps), make_options(cls, options)
    )
    generator = torch.Generator().manual_seed(seed)
    method.begin_task(first, 0)
    method.train_task(first, 0, generator, progress=False)
    method.finish_task(first, 0)
    method.begin_task(second, 1)
    image, label = second.test_images[0], int(second.test_labels[0])
    before = {
        "similarity": _similarity(method, second),
        "relations": _relations(method, image, label, second),
    }
    stats = method.train_task(second, 1, generator, progress=False)
    weights = torch.cat(method._weights).tolist() if method._weights else []
    after = {
        "similarity": _similarity(method, second),
        "relations": _relations(method, image, label, second),
    }
    method.finish_task(second, 1)
    return {
        "task": second.name,
        "classnames": list(second.classnames),
        "label": label,
        "image": image,
        "before": before,
        "after": after,
        "teacher_weights": weights,
        "record": method._records[-1],
        "stats": stats,
    }
