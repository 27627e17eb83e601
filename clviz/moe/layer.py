"""The MoE-Adapter layer, and how it enters every residual block of both CLIP towers.

Block output, as in the paper and the reference code::

    x = x + attn(ln_1(x))
    x = x + mlp(ln_2(x)) + sum_i g_i * expert_i(x)     # experts read the post-attention stream

:func:`attach_moe_adapters` turns each open_clip ``ResidualAttentionBlock`` into a
:class:`MoEResidualAttentionBlock` (a subclass, so module names, hooks and ``isinstance`` checks
keep working) with one :class:`MoEAdapterLayer` as ``block.moe``, and freezes the backbone.
Which router a forward pass uses (and whether adapters are bypassed) is set for all layers at
once with the :func:`routing` context manager.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from clviz.moe.experts import ExpertPool
from clviz.moe.router import NoisyTopKRouter, balance_loss


class MoEAdapterLayer(nn.Module):
    """Experts and per-task routers of one block, plus the selection counts of the current task."""

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
        self.task: int | torch.Tensor = 0  # router of each sample; set through routing()
        self.bypass: bool | torch.Tensor | None = None  # True, or the samples that skip adapters
        self.aux_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, batch_first: bool = True) -> torch.Tensor:
        if self.bypass is True:  # the untouched backbone: no routing, no expert
            return torch.zeros_like(x)
        xs = x if batch_first else x.transpose(0, 1)  # N L d
        task = self.task
        if not isinstance(task, torch.Tensor):
            task = torch.full((xs.shape[0],), int(task), dtype=torch.long, device=xs.device)
        index, gates, dense, load = self.router(xs[:, 0], task)
        if self.training:
            self.counts += torch.bincount(index.flatten(), minlength=len(self.experts))
        self.aux_loss = balance_loss(dense, load)
        out = self.experts(xs, index, gates)
        if isinstance(self.bypass, torch.Tensor):
            out = out * (~self.bypass).to(out.dtype)[:, None, None]
        return out if batch_first else out.transpose(0, 1)


class MoEResidualAttentionBlock(ResidualAttentionBlock):
    """open_clip's block with a mixture of expert adapters parallel to its MLP."""

    moe: MoEAdapterLayer

    def forward(self, q_x, k_x=None, v_x=None, attn_mask=None):
        k_x = self.ln_1_kv(k_x) if hasattr(self, "ln_1_kv") and k_x is not None else None
        v_x = self.ln_1_kv(v_x) if hasattr(self, "ln_1_kv") and v_x is not None else None
        x = q_x + self.ls_1(
            self.attention(q_x=self.ln_1(q_x), k_x=k_x, v_x=v_x, attn_mask=attn_mask)
        )
        return x + self.ls_2(self.mlp(self.ln_2(x))) + self.moe(x, self.attn.batch_first)


def attach_moe_adapters(
    model: nn.Module, num_experts: int = 22, bottleneck: int = 64, top_k: int = 2
) -> dict[str, MoEAdapterLayer]:
    """Add a :class:`MoEAdapterLayer` to every residual block of both towers; freeze the rest.

    Returns the layers by block name (``visual.transformer.resblocks.0``, ``transformer...``).
    The model has no routers yet: call ``layer.router.add_task()`` for each task.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    layers = {}
    for name, block in list(model.named_modules()):
        if isinstance(block, ResidualAttentionBlock) and not isinstance(
            block, MoEResidualAttentionBlock
        ):
            block.__class__ = MoEResidualAttentionBlock
            block.moe = MoEAdapterLayer(
                block.ln_1.normalized_shape[0], num_experts, bottleneck, top_k
            )
            layers[name] = block.moe
    if not layers:
        raise ValueError(f"{type(model).__name__} has no open_clip residual attention blocks")
    return layers


def moe_layers(model: nn.Module) -> dict[str, MoEAdapterLayer]:
    """The MoE layers of a model by block name, image tower first."""
    return {
        name[: -len(".moe")]: m
        for name, m in model.named_modules()
        if isinstance(m, MoEAdapterLayer)
    }


@contextmanager
def routing(
    model: nn.Module, task: int | torch.Tensor, bypass: torch.Tensor | None = None
) -> Iterator[None]:
    """Route every MoE layer of ``model`` with router ``task`` (one index, or one per sample);
    samples where ``bypass`` is True skip the adapters and see the untouched backbone."""
    layers = list(moe_layers(model).values())
    for layer in layers:
        layer.task, layer.bypass = task, bypass
    try:
        yield
    finally:
        for layer in layers:
            layer.task, layer.bypass = 0, None
