"""clviz.hooks on the tiny CLIP's residual blocks, both towers."""

from __future__ import annotations

import pytest
import torch

from clviz.backbone import to_model_input
from clviz.hooks import StopForward, Trace, clip_block_names, hookable_modules


@pytest.fixture
def inputs(tiny, small_task):
    model, _, tokenizer = tiny
    return to_model_input(small_task.test_images[:5], model), tokenizer(["a red star.", "a dog."])


def test_block_names_cover_both_towers(tiny):
    blocks = clip_block_names(tiny[0])
    assert blocks["image"] == [f"visual.transformer.resblocks.{i}" for i in range(4)]
    assert blocks["text"] == [f"transformer.resblocks.{i}" for i in range(4)]
    assert set(blocks["image"]) <= set(hookable_modules(tiny[0]))
    assert "visual.transformer.resblocks.0.mlp" in hookable_modules(tiny[0], "visual.*.mlp")


def test_trace_captures_every_block_of_both_towers(tiny, inputs):
    model = tiny[0]
    images, tokens = inputs
    blocks = clip_block_names(model)
    with Trace(model, blocks["image"] + blocks["text"]) as trace:
        model.encode_image(images)
        model.encode_text(tokens)
    width = 128
    for name in blocks["image"]:
        assert trace[name].shape == (5, 17, width)  # 4x4 patches + class token
    for name in blocks["text"]:
        assert trace[name].shape == (2, 24, width)  # context length 24
    assert not trace[blocks["image"][0]].requires_grad


def test_the_last_block_feeds_the_embedding(tiny, inputs):
    model = tiny[0]
    images, _ = inputs
    last = clip_block_names(model)["image"][-1]
    with Trace(model, last) as trace:
        embedding = model.encode_image(images)
    visual = model.visual
    recomputed = visual.ln_post(trace[last][:, 0]) @ visual.proj
    torch.testing.assert_close(recomputed, embedding, rtol=1e-4, atol=1e-5)


def test_edit_output_changes_the_result(tiny, inputs):
    model = tiny[0]
    images, _ = inputs
    reference = model.encode_image(images)
    block = clip_block_names(model)["image"][2]
    with Trace(model, block, edit_output=lambda name, out: torch.zeros_like(out)) as trace:
        edited = model.encode_image(images)
    assert torch.count_nonzero(trace[block]) == 0
    assert not torch.allclose(reference, edited)
    torch.testing.assert_close(model.encode_image(images), reference)  # the edit is gone


def test_hooks_are_removed_even_after_an_exception(tiny, inputs):
    model = tiny[0]
    block = dict(model.named_modules())[clip_block_names(model)["image"][0]]
    before = len(block._forward_hooks)
    with pytest.raises(RuntimeError, match="boom"), Trace(model, clip_block_names(model)["image"]):
        raise RuntimeError("boom")
    assert len(block._forward_hooks) == before


def test_stop_ends_the_forward_pass_early(tiny, inputs):
    model = tiny[0]
    images, _ = inputs
    names = clip_block_names(model)["image"]
    with Trace(model, names[:2], stop=True) as trace:
        model.encode_image(images)
        pytest.fail("the forward pass should have stopped")  # pragma: no cover
    assert set(trace) == set(names[:2])
    assert issubclass(StopForward, Exception)


def test_filter_and_retain_input(tiny, inputs):
    model = tiny[0]
    images, _ = inputs
    with Trace(
        model,
        lambda name, m: name.startswith("visual.") and name.endswith(".mlp"),
        retain_input=True,
    ) as trace:
        model.encode_image(images)
    assert len(trace) == 4
    name = "visual.transformer.resblocks.1.mlp"
    assert trace.inputs[name].shape == trace[name].shape


def test_unknown_layer_names_are_explained(tiny):
    with pytest.raises(KeyError, match=r"some valid names: visual.transformer.resblocks"):
        Trace(tiny[0], "visual.transformer.resblocks.9")
    with pytest.raises(ValueError, match="selected no module"):
        Trace(tiny[0], lambda name, m: False)
