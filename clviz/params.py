"""Parameter accounting without training: build the backbone (random weights), attach a
method, count. Reproduces MoE-Adapters' "60% fewer trainable parameters" by construction."""

from __future__ import annotations

from typing import Any

import open_clip

from clviz.backbone import random_init_quietly, register_tiny_config
from clviz.methods import build_method, get_method
from clviz.methods.moe import MoEAdaptersTaskId
from clviz.methods.sites import site_tower


def count_parameters(
    backbone: str,
    method: str,
    experts: int = 22,
    bottleneck: int = 64,
    tasks: int = 11,
    top_k: int = 2,
) -> dict[str, Any]:
    """Trainable and total parameters of ``method`` on ``backbone`` after ``tasks`` tasks.

    For MoE-Adapters the trainable count is every expert plus one router (gate and noise
    matrices) per task in every layer of both towers, the paper's accounting, split by tower.
    ``experts``, ``bottleneck`` and ``top_k`` configure the MoE methods only.
    """
    register_tiny_config()
    if backbone not in open_clip.list_models():
        raise ValueError(f"unknown backbone {backbone!r}; see open_clip.list_models()")
    is_moe = issubclass(get_method(method), MoEAdaptersTaskId)
    options = {"experts": experts, "bottleneck": bottleneck, "top_k": top_k} if is_moe else {}
    with random_init_quietly():
        model = open_clip.create_model(backbone)
    backbone_total = sum(p.numel() for p in model.parameters())
    instance = build_method(method, model, open_clip.get_tokenizer(backbone), options=options)
    out: dict[str, Any] = {"backbone": backbone, "method": method}
    if isinstance(instance, MoEAdaptersTaskId):
        for _ in range(tasks):
            instance.add_router()
        parts = {"image_experts": 0, "text_experts": 0, "image_routers": 0, "text_routers": 0}
        for name, layer in instance.layers.items():
            tower = site_tower(name)
            parts[f"{tower}_experts"] += sum(p.numel() for p in layer.experts.parameters())
            parts[f"{tower}_routers"] += sum(p.numel() for p in layer.router.parameters())
        out.update(parts, experts=experts, bottleneck=bottleneck, tasks=tasks)
    trainable, total = instance.count_parameters()
    out.update(trainable=trainable, total=total, full_finetune=backbone_total - 1)
    return out
