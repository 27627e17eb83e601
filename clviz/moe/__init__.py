"""MoE-Adapters (Yu et al., CVPR 2024): mixture-of-experts adapters inside a frozen CLIP.

- :mod:`clviz.moe.experts`: the bottleneck experts and their batched top-k forward pass;
- :mod:`clviz.moe.router`: one noisy top-k router per task;
- :mod:`clviz.moe.layer`: the MoE layer in every residual block of both towers.
"""

from clviz.moe.experts import Expert, ExpertPool
from clviz.moe.layer import MoEAdapterLayer, attach_moe_adapters, moe_layers
from clviz.moe.router import NoisyTopKRouter

__all__ = [
    "Expert",
    "ExpertPool",
    "MoEAdapterLayer",
    "NoisyTopKRouter",
    "attach_moe_adapters",
    "moe_layers",
]
