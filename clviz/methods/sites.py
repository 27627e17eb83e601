"""Adapter sites: how MoE-Adapters and ATLAS plug modules into every block of both CLIP towers.

open_clip's residual block computes ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``. An
:class:`AdaptedBlock` (a subclass, so module names, hooks and ``isinstance`` checks keep
working) has three optional *slots*::

    x   = x + ls_1(attn_site(attn(ln_1(x))))             # "attn": rewrites the attention output
    out = x + ls_2(mlp_site(mlp(ln_2(x))))               # "mlp": rewrites the MLP output
    out = out + parallel_site(x)                         # "parallel": added beside the MLP

MoE-Adapters fill "parallel" (experts read the post-attention stream), ATLAS fills "attn" and
"mlp". :func:`attach_sites` swaps every block of both towers and freezes the backbone;
:func:`use_task` chooses, for every site at once, which task's parameters run (or none: the
untouched backbone; nested uses restore the outer one on exit). This is the only copy of
open_clip's block forward in clviz, pinned to the source it mirrors by
:data:`OPEN_CLIP_BLOCK_FORWARD_SHA256` (:func:`check_open_clip_forward`, run by the tests).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import open_clip
import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from clviz.errors import InputError

SLOTS = ("attn", "mlp", "parallel")


class Site(nn.Module):
    """A module that plugs into a slot of an :class:`AdaptedBlock`.

    ``task`` says whose parameters run: None is the untouched backbone, an int one task, a
    tensor one task per sample; ``bypass`` (a per-sample mask) sends some samples around the
    site. Both are set for all sites at once by :func:`use_task`. ``forward`` reads and
    returns batch-first tensors (B x L x d); a "parallel" site may return None (adds nothing).
    """

    def __init__(self) -> None:
        super().__init__()
        self.task: int | torch.Tensor | None = None
        self.bypass: torch.Tensor | None = None


# The sha256 of ``inspect.getsource(ResidualAttentionBlock.forward)`` in open_clip 3.3.0 (the
# installed version), the forward that ``AdaptedBlock.forward`` mirrors line by line, with the
# slots added. When open_clip changes it, re-check the copy, then update the hash.
OPEN_CLIP_BLOCK_FORWARD_SHA256 = "46cf252503e970581553754b6cdda191c77759fb866e5547a730699dff45caab"


def check_open_clip_forward() -> None:
    """Raise if open_clip's ``ResidualAttentionBlock.forward`` is no longer the source that
    :meth:`AdaptedBlock.forward` was copied from (its hash differs from the pinned one)."""
    source = inspect.getsource(ResidualAttentionBlock.forward)
    digest = hashlib.sha256(source.encode()).hexdigest()
    if digest != OPEN_CLIP_BLOCK_FORWARD_SHA256:
        raise RuntimeError(
            "open_clip's block forward (open_clip.transformer.ResidualAttentionBlock.forward) "
            f"changed (installed version {open_clip.__version__}; sha256 {digest}, pinned "
            f"{OPEN_CLIP_BLOCK_FORWARD_SHA256}): re-check that AdaptedBlock.forward in "
            f"{__name__} still mirrors it line by line, then update "
            "OPEN_CLIP_BLOCK_FORWARD_SHA256"
        )


class AdaptedBlock(ResidualAttentionBlock):
    """open_clip's residual block with :class:`Site` modules in its slots (``self.sites``)."""

    sites: nn.ModuleDict

    def _site(self, slot: str, u: torch.Tensor) -> torch.Tensor | None:
        if slot not in self.sites:
            return u
        site = self.sites[slot]
        if self.attn.batch_first:
            return site(u)
        out = site(u.transpose(0, 1))
        return None if out is None else out.transpose(0, 1)

    def forward(self, q_x, k_x=None, v_x=None, attn_mask=None):
        k_x = self.ln_1_kv(k_x) if hasattr(self, "ln_1_kv") and k_x is not None else None
        v_x = self.ln_1_kv(v_x) if hasattr(self, "ln_1_kv") and v_x is not None else None
        attn = self.attention(q_x=self.ln_1(q_x), k_x=k_x, v_x=v_x, attn_mask=attn_mask)
        x = q_x + self.ls_1(self._site("attn", attn))
        out = x + self.ls_2(self._site("mlp", self.mlp(self.ln_2(x))))
        if "parallel" in self.sites:
            extra = self._site("parallel", x)
            if extra is not None:
                out = out + extra
        return out


MakeSites = Callable[[str, ResidualAttentionBlock], dict[str, Site]]


def attach_sites(model: nn.Module, make_sites: MakeSites) -> dict[str, Site]:
    """Give every residual block of both towers the sites ``make_sites(block_name, block)``
    returns (slot -> site), and freeze the backbone.

    Returns every site by ``<block name>.<slot>`` (``visual.transformer.resblocks.0.mlp``),
    image tower first, in the order of the blocks.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    sites: dict[str, Site] = {}
    for name, block in list(model.named_modules()):
        if not isinstance(block, ResidualAttentionBlock):
            continue
        if isinstance(block, AdaptedBlock):
            raise InputError(f"{name} already has adapter sites; attach to a fresh backbone")
        slots = make_sites(name, block)
        unknown = set(slots) - set(SLOTS)
        if unknown:
            raise InputError(f"unknown slot(s) {sorted(unknown)}; slots are {', '.join(SLOTS)}")
        block.__class__ = AdaptedBlock
        block.sites = nn.ModuleDict(slots)
        sites.update({f"{name}.{slot}": site for slot, site in slots.items()})
    if not sites:
        raise InputError(f"{type(model).__name__} has no open_clip residual attention blocks")
    return sites


def block_width(block: ResidualAttentionBlock) -> tuple[int, int]:
    """(width, attention heads) of an open_clip block."""
    return block.ln_1.normalized_shape[0], block.attn.num_heads


def site_tower(name: str) -> str:
    """'image' or 'text': which tower a site (or block) name belongs to."""
    return "image" if name.startswith("visual.") else "text"


@contextmanager
def use_task(
    sites: Iterable[Site], task: int | torch.Tensor | None, bypass: torch.Tensor | None = None
) -> Iterator[None]:
    """Run every site with ``task``'s parameters (None: the untouched backbone; a tensor: one
    task per sample); samples where ``bypass`` is True see the backbone. On exit each site
    gets back the task and bypass it had before, so an inner use restores the outer one."""
    sites = list(sites)
    previous = [(site.task, site.bypass) for site in sites]
    for site in sites:
        site.task, site.bypass = task, bypass
    try:
        yield
    finally:
        for site, (old_task, old_bypass) in reversed(list(zip(sites, previous, strict=True))):
            site.task, site.bypass = old_task, old_bypass
