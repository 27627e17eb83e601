"""Parameter accounting without training: build the backbone (random weights), attach a
method, count. Reproduces MoE-Adapters' "60% fewer trainable parameters" by construction."""

from __future__ import annotations

import dataclasses
from typing import Any

import open_clip

from clviz.backbone import random_init_quietly, register_tiny_config
from clviz.errors import InputError
from clviz.methods import build_method, get_method


def count_parameters(
    backbone: str,
    method: str,
    experts: int = 22,
    bottleneck: int = 64,
    tasks: int = 11,
    top_k: int = 2,
) -> dict[str, Any]:
    """Trainable and total parameters of ``method`` on ``backbone`` after ``tasks`` tasks.

    The method reports its own breakdown (:meth:`~clviz.core.method.Method.parameter_breakdown`):
    for MoE-Adapters the trainable count is every expert plus one router (gate and noise
    matrices) per task in every layer of both towers, the paper's accounting, split by tower.
    ``experts``, ``bottleneck`` and ``top_k`` go to the methods whose options have them.
    """
    register_tiny_config()
    if backbone not in open_clip.list_models():
        raise InputError(f"unknown backbone {backbone!r}; see open_clip.list_models()")
    fields = {f.name for f in dataclasses.fields(get_method(method).Options)}
    sizes = {"experts": experts, "bottleneck": bottleneck, "top_k": top_k}
    options = {name: value for name, value in sizes.items() if name in fields}
    with random_init_quietly():
        model = open_clip.create_model(backbone)
    backbone_total = sum(p.numel() for p in model.parameters())
    instance = build_method(method, model, open_clip.get_tokenizer(backbone), options=options)
    return {
        "backbone": backbone,
        "method": method,
        **options,
        "tasks": tasks,
        **instance.parameter_breakdown(tasks),
        "full_finetune": backbone_total - 1,
    }
