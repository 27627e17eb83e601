"""load_backbone: the bundled tiny CLIP, local weight files, hub tags without network."""

from __future__ import annotations

import shutil
import time

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from clviz import backbone
from clviz.backbone import BackboneError, load_backbone, read_manifest, sha256_of, to_model_input


def test_bundled_tiny_clip_loads_as_an_open_clip_model(tiny):
    model, preprocess, tokenizer = tiny
    assert isinstance(model, open_clip.CLIP)
    assert not model.training
    assert tokenizer(["a red star."]).shape == (1, 24)
    from PIL import Image

    x = preprocess(Image.new("RGB", (48, 48), (200, 30, 30)))
    assert x.shape == (3, 32, 32)


def test_manifest_describes_the_bundle():
    manifest = read_manifest()
    assert manifest["sha256"] == sha256_of(backbone.TINY_WEIGHTS)
    assert manifest["architecture"] == "clviz-tiny"
    assert manifest["rebuild_command"].startswith("python data_prep/pretrain_tiny_clip.py")
    assert manifest["pretrain_config"]["steps"] > 0 and manifest["final_loss"] > 0
    assert backbone.TINY_WEIGHTS.stat().st_size <= 20 * 1024 * 1024


def test_corrupt_bundle_names_the_rebuild_command(tmp_path, monkeypatch):
    corrupt = tmp_path / "clviz-tiny.safetensors"
    shutil.copy(backbone.TINY_WEIGHTS, corrupt)
    with open(corrupt, "r+b") as f:
        f.seek(-16, 2)
        f.write(b"\x00" * 16)
    monkeypatch.setattr(backbone, "TINY_WEIGHTS", corrupt)
    with pytest.raises(BackboneError, match=r"corrupt.*data_prep/pretrain_tiny_clip.py"):
        load_backbone()


def test_missing_bundle_names_the_rebuild_command(tmp_path, monkeypatch):
    monkeypatch.setattr(backbone, "TINY_WEIGHTS", tmp_path / "absent.safetensors")
    with pytest.raises(BackboneError, match=r"missing.*data_prep/pretrain_tiny_clip.py"):
        load_backbone()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_weights_file(tmp_path, suffix):
    torch.manual_seed(123)
    backbone.register_tiny_config()
    source = open_clip.create_model("clviz-tiny")
    path = tmp_path / f"mine{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    model, _, _ = load_backbone("clviz-tiny", pretrained=path)
    for (name, a), b in zip(source.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_hub_tag_offline_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    started = time.perf_counter()
    with pytest.raises(BackboneError) as err:
        load_backbone("ViT-B-16", pretrained="openai")
    assert time.perf_counter() - started < 10
    assert "pretrained='/path/to/" in str(err.value) and "not reachable" in str(err.value)


def test_unreachable_hub_is_detected_without_retries(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    started = time.perf_counter()
    with pytest.raises(BackboneError, match="not reachable"):
        load_backbone("ViT-B-16", pretrained="laion2b_s34b_b88k")
    assert time.perf_counter() - started < 10


def test_unknown_tag_and_architecture():
    with pytest.raises(BackboneError, match=r"Known tags: .*openai"):
        load_backbone("ViT-B-16", pretrained="no-such-tag")
    with pytest.raises(BackboneError, match="unknown backbone 'ViT-Q-99'"):
        load_backbone("ViT-Q-99")


def test_model_input_is_resized_and_normalised(tiny):
    model = tiny[0]
    images = torch.full((2, 3, 64, 64), 255, dtype=torch.uint8)
    x = to_model_input(images, model)
    assert x.shape == (2, 3, 32, 32)
    mean, std, _ = backbone.image_normalization(model)
    torch.testing.assert_close(x[0, :, 0, 0], ((1 - mean) / std).flatten())
