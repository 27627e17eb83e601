"""Adapter sites: one adapted block for MoE-Adapters and ATLAS, slots, and the active task."""

from __future__ import annotations

import pytest
import torch
from open_clip.transformer import ResidualAttentionBlock

from clviz.backbone import load_backbone
from clviz.core.clip import encode_images
from clviz.methods.sites import AdaptedBlock, Site, attach_sites, site_tower, use_task


class Scale(Site):
    """A test site: multiplies by 2 when a task is active; the parallel slot adds 1s."""

    def __init__(self, parallel: bool = False) -> None:
        super().__init__()
        self.parallel, self.seen = parallel, []

    def forward(self, u):
        self.seen.append(self.task)
        if self.task is None:
            return None if self.parallel else u
        return torch.ones_like(u) if self.parallel else 2 * u


def test_attach_swaps_every_block_freezes_the_backbone_and_names_the_sites(tiny_model):
    sites = attach_sites(tiny_model, lambda name, block: {"mlp": Scale(), "parallel": Scale(True)})
    blocks = [m for m in tiny_model.modules() if isinstance(m, ResidualAttentionBlock)]
    assert blocks and all(isinstance(b, AdaptedBlock) for b in blocks)
    assert len(sites) == 2 * len(blocks)
    assert next(iter(sites)) == "visual.transformer.resblocks.0.mlp"
    assert {site_tower(n) for n in sites} == {"image", "text"}
    assert not any(p.requires_grad for p in tiny_model.parameters())
    with pytest.raises(ValueError, match="already has adapter sites"):
        attach_sites(tiny_model, lambda name, block: {})
    with pytest.raises(ValueError, match="unknown slot"):
        attach_sites(load_backbone()[0], lambda name, block: {"ffn": Scale()})


def test_inactive_sites_leave_the_backbone_untouched_and_use_task_sets_them_all(tiny, tiny_model):
    images = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():  # one attention kernel for both: no_grad takes torch's fast path
        expected = encode_images(tiny[0], images)
    sites = attach_sites(tiny_model, lambda name, block: {"mlp": Scale(), "parallel": Scale(True)})
    with torch.no_grad():
        assert torch.equal(encode_images(tiny_model, images), expected)
        with use_task(sites.values(), 3):
            changed = encode_images(tiny_model, images)
    assert not torch.allclose(changed, expected)
    image_sites = [s for n, s in sites.items() if site_tower(n) == "image"]
    assert all(s.seen == [None, 3] for s in image_sites)
    assert all(s.task is None and s.bypass is None for s in sites.values())  # reset on exit


def test_nested_use_task_restores_the_outer_task_on_exit():
    sites = [Scale(), Scale()]
    outer_bypass, inner = torch.tensor([True, False]), torch.tensor([1, 0])
    with use_task(sites, 2, outer_bypass):
        with use_task(sites, inner):
            assert all(s.task is inner and s.bypass is None for s in sites)
            with use_task(sites, None):
                assert all(s.task is None for s in sites)
            assert all(s.task is inner for s in sites)  # the middle one, back
        assert all(s.task == 2 and s.bypass is outer_bypass for s in sites)  # the outer one
        with pytest.raises(RuntimeError), use_task(sites, 5):
            raise RuntimeError("a failure inside restores the outer task as well")
        assert all(s.task == 2 and s.bypass is outer_bypass for s in sites)
    assert all(s.task is None and s.bypass is None for s in sites)  # as before the outermost
