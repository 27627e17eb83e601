"""Parameter accounting without training: build the backbone (random weights), attach a
method, count. Reproduces MoE-Adapters' "60% fewer trainable parameters" by construction."""

from __future__ import annotations

from typing import Any

import open_clip

from clviz.backbone import random_init_quietly, register_tiny_config
from clviz.methods import TrainConfig, get_method, make_options


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
    matrices) per task in every layer of both towers, the paper's accounting.
    """
    register_tiny_config()
    if backbone not in open_clip.list_models():
        raise ValueError(f"unknown backbone {backbone!r}; see open_clip.list_models()")
    cls = get_method(method)
    options = (
        {"experts": experts, "bottleneck": bottleneck, "top_k": top_k}
        if "experts" in cls.Options.__dataclass_fields__
        else {}
    )
    with random_init_quietly():
        model = open_clip.create_model(backbone)
    instance = cls(
        model, open_clip.get_tokenizer(backbone), TrainConfig(), make_options(cls, options)
    )
    out: dict[str, Any] = {"backbone": backbone, "method": method}
    if hasattr(instance, "add_router"):
        for _ in range(tasks):
            instance.add_router()
        parts = {"image_experts": 0, "text_experts": 0, "image_routers": 0, "text_routers": 0}
        for name, layer in instance.layers.items():
            tower = "image" if name.startswith("visual.") else "text"
            parts[f"{tower}_experts"] += sum(p.numel() for p in layer.experts.parameters())
            parts[f"{tower}_routers"] += sum(p.numel() for p in layer.router.parameters())
        out.update(parts, experts=experts, bottleneck=bottleneck, tasks=tasks)
    trainable, total = instance.count_parameters()
    backbone_total = sum(p.numel() for n, p in model.named_parameters() if ".moe." not in n)
    out.update(trainable=trainable, total=total, full_finetune=backbone_total - 1)
    return out
