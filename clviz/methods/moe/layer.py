"""The MoE-Adapter layer: experts and per-task routers beside the MLP of one block.

Block output, as in the paper and the reference code::

    x = x + attn(ln_1(x))
    x = x + mlp(ln_2(x)) + sum_i g_i * expert_i(x)     # experts read the post-attention stream

:func:`attach_moe_adapters` fills the "parallel" slot of every block of both towers with a
:class:`MoEAdapterLayer` (:mod:`clviz.methods.sites`); which router a forward pass uses, or
whether the adapters are bypassed, is set for all layers at once with
:func:`clviz.methods.sites.use_task`.
"""

from __future__ import annotations

import torch
from torch import nn

from clviz.methods.moe.experts import ExpertPool
from clviz.methods.moe.router import NoisyTopKRouter, balance_loss
from clviz.methods.sites import Site, attach_sites, block_width


class MoEAdapterLayer(Site):
    """Experts and per-task routers of one block, plus the selection counts of the current task.

    ``task`` is the router of every sample (an index, or one per sample; None: the untouched
    backbone, nothing added); samples where ``bypass`` is True get no adapter output. With
    ``balance`` set, each forward pass leaves its load-balancing loss in ``aux_loss`` (the
    method adds it when its ``balance_loss`` option is on; otherwise it is not computed).
    """

    def __init__(
        self,
        width: int,
        num_experts: int = 22,
        bottleneck: int = 64,
        top_k: int = 2,
        dropout: float = 0.1,
        scale: float = 0.1,
    ):
        super().__init__()
        self.experts = ExpertPool(width, num_experts, bottleneck, dropout, scale)
        self.router = NoisyTopKRouter(width, num_experts, top_k)
        self.register_buffer("counts", torch.zeros(num_experts, dtype=torch.long), persistent=False)
        self.balance = False
        self.aux_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.task is None:  # the untouched backbone: no routing, no expert
            return None
        index, gates, dense, load = self.router(x[:, 0], self.task, with_load=self.balance)
        if self.training:
            self.counts += torch.bincount(index.flatten(), minlength=len(self.experts))
        self.aux_loss = balance_loss(dense, load) if self.balance else None
        out = self.experts(x, index, gates)
        if self.bypass is not None:
            out = out * (~self.bypass).to(out.dtype)[:, None, None]
        return out


def attach_moe_adapters(
    model: nn.Module, num_experts: int = 22, bottleneck: int = 64, top_k: int = 2
) -> dict[str, MoEAdapterLayer]:
    """A :class:`MoEAdapterLayer` beside the MLP of every block of both towers; the backbone
    is frozen. Returns the layers by block name (``visual.transformer.resblocks.0``), image
    tower first. No router exists yet: call ``layer.router.add_task()`` for each task."""
    sites = attach_sites(
        model,
        lambda name, block: {
            "parallel": MoEAdapterLayer(block_width(block)[0], num_experts, bottleneck, top_k)
        },
    )
    return {name.removesuffix(".parallel"): layer for name, layer in sites.items()}
