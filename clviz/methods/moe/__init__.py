"""MoE-Adapters (Yu et al., CVPR 2024): mixture-of-experts adapters inside a frozen CLIP.

- :mod:`~clviz.methods.moe.experts`: the bottleneck experts and their batched top-k pass;
- :mod:`~clviz.methods.moe.router`: one noisy top-k router per task;
- :mod:`~clviz.methods.moe.layer`: the MoE layer beside the MLP of every block of both towers;
- :mod:`~clviz.methods.moe.ddas`: the DDAS auto-selector;
- :mod:`~clviz.methods.moe.method`: the two registered methods, with and without DDAS.
"""

from clviz.methods.moe.ddas import DDAS
from clviz.methods.moe.experts import Expert, ExpertPool
from clviz.methods.moe.layer import MoEAdapterLayer, attach_moe_adapters
from clviz.methods.moe.method import (
    DDASRecord,
    DDASReport,
    MoEAdapters,
    MoEAdaptersTaskId,
    RoutingRecord,
)
from clviz.methods.moe.router import NoisyTopKRouter

__all__ = [
    "DDAS",
    "DDASRecord",
    "DDASReport",
    "Expert",
    "ExpertPool",
    "MoEAdapterLayer",
    "MoEAdapters",
    "MoEAdaptersTaskId",
    "NoisyTopKRouter",
    "RoutingRecord",
    "attach_moe_adapters",
]
