"""What a backbone's inputs are checked and fingerprinted by: config values, weights' shapes,
content digests (cached by file stat) instead of paths."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from clviz import backbone
from clviz.backbone import (
    BackboneError,
    check_backbone_config,
    file_digest,
    input_fingerprint,
    load_backbone,
    read_manifest,
)
from clviz.backbone_config import estimate_parameters
from clviz.data.fake import save_random_weights, write_narrow_vit

HOUR_AGO = time.time() - 3600


@pytest.fixture(autouse=True)
def fresh_digest_cache(tmp_path, monkeypatch):
    """Every test gets its own results root (so its own digest cache) and an empty in-process
    cache."""
    monkeypatch.setenv("CLVIZ_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(backbone, "_DIGESTS", {})


@pytest.fixture
def hashes(monkeypatch):
    """A list that grows by one path for every file actually hashed."""
    calls: list[Path] = []
    real = backbone.sha256_of

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(backbone, "sha256_of", counting)
    return calls


def narrow(folder: Path, name: str = "narrow", **changes: dict) -> Path:
    """A narrow ViT config (image 32 px, patch 8, widths 64 and 32) with ``changes`` applied
    per section (``vision_cfg={"width": 128}``), written as ``folder/name.json``."""
    config = json.loads(write_narrow_vit(folder / "base", image_size=32, patch_size=8).read_text())
    for section, values in changes.items():
        config[section].update(values)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def write_old(path: Path, data: bytes) -> Path:
    """Write ``data`` and date the file an hour back (settled: its digest may be cached)."""
    path.write_bytes(data)
    os.utime(path, (HOUR_AGO, HOUR_AGO))
    return path


# -- fingerprints ------------------------------------------------------------------------------


def test_fingerprint_follows_weights_rewritten_at_the_same_path(tmp_path):
    config = narrow(tmp_path)
    weights = write_old(tmp_path / "w.pt", b"a" * 4096)
    first = input_fingerprint(str(config), weights)
    assert first["weights"] == "file" and first["weights_sha256"] == file_digest(weights)
    write_old(weights, b"b" * 4096)  # same size, same mtime: the ctime changed
    second = input_fingerprint(str(config), weights)
    assert second["weights_sha256"] != first["weights_sha256"]
    moved = write_old(tmp_path / "other.pt", b"c" * 4096)
    os.replace(moved, weights)  # same size and mtime again, moved over it: a new inode
    third = input_fingerprint(str(config), weights)
    assert third["weights_sha256"] not in {first["weights_sha256"], second["weights_sha256"]}
    assert str(weights) not in json.dumps(third)  # content, not path


def test_fingerprint_follows_config_edited_in_place(tmp_path):
    config = narrow(tmp_path)
    first = input_fingerprint(str(config), None)
    assert first == {
        "architecture": "narrow",
        "config_sha256": file_digest(config),
        "weights": "random init",
    }
    data = json.loads(config.read_text())
    data["vision_cfg"]["layers"] = 1
    config.write_text(json.dumps(data))
    assert input_fingerprint(str(config), None)["config_sha256"] != first["config_sha256"]


def test_fingerprint_of_bundled_and_builtin_backbones():
    tiny = input_fingerprint("clviz-tiny", None)
    assert tiny["weights"] == "bundled" and tiny["weights_sha256"] == read_manifest()["sha256"]
    wide = input_fingerprint("clviz-tiny-64", None)
    assert wide["weights_sha256"] == tiny["weights_sha256"]
    assert wide["config_sha256"] != tiny["config_sha256"]
    vit = input_fingerprint("ViT-B-16", None)
    assert vit["config"].startswith("open_clip ") and vit["weights"] == "random init"
    with pytest.raises(BackboneError, match="unknown backbone 'ViT-Q-99'"):
        input_fingerprint("ViT-Q-99", None)


def test_fingerprint_of_a_hub_tag_adds_the_cached_file(tmp_path, monkeypatch):
    monkeypatch.setattr(backbone, "_cached_hub_file", lambda cfg: None)
    assert input_fingerprint("ViT-B-16", "openai") == {
        "architecture": "ViT-B-16",
        "config": f"open_clip {open_clip.__version__} built-in",
        "weights": "tag",
        "weights_tag": "openai",
    }
    cached = write_old(tmp_path / "open_clip_model.safetensors", b"weights")
    monkeypatch.setattr(backbone, "_cached_hub_file", lambda cfg: str(cached))
    assert input_fingerprint("ViT-B-16", "openai")["weights_sha256"] == file_digest(cached)
    with pytest.raises(BackboneError, match="neither an existing weights file nor a known tag"):
        input_fingerprint("ViT-B-16", "no-such-tag")


def test_digest_is_cached_in_process_and_on_disk(tmp_path, hashes):
    weights = write_old(tmp_path / "w.bin", os.urandom(1 << 16))
    first = file_digest(weights)
    assert file_digest(weights) == first and len(hashes) == 1
    backbone._DIGESTS.clear()  # another process: the digest comes from the cache file
    assert file_digest(weights) == first and len(hashes) == 1
    cache = json.loads(backbone.digest_cache_path().read_text())
    assert cache["files"][str(weights.resolve())]["sha256"] == first
    os.utime(weights, (HOUR_AGO + 60, HOUR_AGO + 60))  # touched: hashed again
    assert file_digest(weights) == first and len(hashes) == 2


def test_fingerprint_does_not_rehash_on_a_second_call(tmp_path, hashes):
    config = narrow(tmp_path)
    os.utime(config, (HOUR_AGO, HOUR_AGO))
    weights = write_old(tmp_path / "w.pt", b"x" * 1000)
    first = input_fingerprint(str(config), weights)
    assert len(hashes) == 2
    assert input_fingerprint(str(config), weights) == first and len(hashes) == 2


def test_freshly_written_file_is_not_cached(tmp_path, hashes):
    """A file modified within the last two seconds could change again within one mtime tick
    without its stat changing: it is hashed every time until it settles."""
    fresh = tmp_path / "fresh.pt"
    fresh.write_bytes(b"1" * 100)
    first = file_digest(fresh)
    fresh.write_bytes(b"2" * 100)  # possibly within the same timestamp tick
    assert file_digest(fresh) != first and len(hashes) == 2


def test_damaged_digest_cache_is_ignored_and_rewritten(tmp_path):
    weights = write_old(tmp_path / "w.pt", b"weights")
    cache = backbone.digest_cache_path()
    cache.parent.mkdir(parents=True)
    for damage in ("{not json", "[]", '{"version": 1, "files": {"x": 3}}', ""):
        cache.write_text(damage)
        backbone._DIGESTS.clear()
        assert file_digest(weights) == backbone.sha256_of(weights)
        assert json.loads(cache.read_text())["version"] == backbone.DIGEST_CACHE_VERSION


# -- backbone configs --------------------------------------------------------------------------

BAD_CONFIGS = {
    "string width": ("vision_cfg", "width", "128", 'vision_cfg.width = "128" (a string)'),
    "zero width": ("vision_cfg", "width", 0, "vision_cfg.width = 0; expected a positive integer"),
    "bool layers": ("text_cfg", "layers", True, "text_cfg.layers = true (a boolean)"),
    "float width": ("text_cfg", "width", 32.0, "text_cfg.width = 32.0 (a float)"),
    "huge width": ("vision_cfg", "width", 10**9, "vision_cfg.width = 1000000000"),
    "patch": ("vision_cfg", "patch_size", 5, "vision_cfg.patch_size = 5; expected a patch size"),
    "heads": ("text_cfg", "heads", 3, "text_cfg.heads = 3; expected a divisor of text_cfg.width"),
    "head width": ("vision_cfg", "head_width", 128, "vision_cfg.head_width = 128; expected at"),
    "typo": ("vision_cfg", "widht", 64, "vision_cfg.widht = 64; expected a key open_clip knows"),
    "context": ("text_cfg", "context_length", 10**6, "text_cfg.context_length = 1000000"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_config_is_one_line_naming_file_key_and_value(tmp_path, case):
    section, key, value, expected = BAD_CONFIGS[case]
    path = narrow(tmp_path, "bad", **{section: {key: value}})
    for call in (check_backbone_config, lambda p: load_backbone(str(p), device="cpu")):
        with pytest.raises(BackboneError) as err:
            call(path)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"backbone config {path}: ")
        assert expected in message, message
    if case == "huge width":
        assert "describes about 2.4e+19 parameters" in message and "20 billion" in message


def test_config_without_a_section_or_not_json(tmp_path):
    config = json.loads(narrow(tmp_path).read_text())
    del config["text_cfg"]
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps(config))
    with pytest.raises(BackboneError, match=r"missing.json: text_cfg is missing; expected an obj"):
        input_fingerprint(str(missing), None)
    broken = tmp_path / "broken.json"
    broken.write_text('{"embed_dim": 32,\n "vision_cfg": {}')
    with pytest.raises(BackboneError, match=r"broken.json is not valid JSON \(line 2, column 18"):
        check_backbone_config(broken)
    with pytest.raises(BackboneError, match=r"absent\.json does not exist"):
        load_backbone(str(tmp_path / "absent.json"))


def test_every_open_clip_config_passes_and_sizes_are_exact(tmp_path):
    builtin = Path(open_clip.__file__).parent / "model_configs"
    files = sorted(builtin.glob("*.json"))
    assert len(files) > 50
    for path in files:
        check_backbone_config(path)
    with backbone.random_init_quietly(), torch.device("meta"):
        for name in ("ViT-B-16", "RN50"):
            model = open_clip.create_model(name, device="meta")
            count = sum(p.numel() for p in model.parameters())
            config = check_backbone_config(builtin / f"{name}.json")
            assert estimate_parameters(config)["total"] == count
    tiny = check_backbone_config(backbone.PACKAGE_DIR / "configs" / "clviz-tiny.json")
    assert estimate_parameters(tiny)["total"] == read_manifest()["parameters"]


def test_config_edited_into_bad_json_breaks_only_itself(tmp_path):
    first, second = narrow(tmp_path, "first"), narrow(tmp_path, "second")
    load_backbone(str(first), device="cpu")
    first.write_text("{")  # open_clip's add_model_config would re-read this on every later add
    model, _, _ = load_backbone(str(second), device="cpu")
    assert model.visual.conv1.weight.shape[0] == 64
    with pytest.raises(BackboneError, match=r"first\.json is not valid JSON"):
        load_backbone(str(first), device="cpu")


# -- weights of another architecture ---------------------------------------------------------


def test_weights_of_another_width_name_both_architectures(tmp_path, monkeypatch):
    asked = narrow(tmp_path)
    wider = save_random_weights(
        narrow(tmp_path, "wider", vision_cfg={"width": 128}), tmp_path / "w.pt"
    )

    def no_load(*args, **kwargs):
        raise AssertionError("open_clip's load ran before the architecture check")

    monkeypatch.setattr(open_clip.factory, "load_checkpoint", no_load)
    with pytest.raises(BackboneError) as err:
        load_backbone(str(asked), pretrained=wider, device="cpu")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"--pretrained {wider} holds another architecture than --backbone")
    assert "the file has image tower width 128, 2 layers, patch 8; text width 32" in message
    assert f"--backbone {asked} has image tower width 64, 2 layers, patch 8" in message
    assert "visual.class_embedding is 128 in the file, 64 here" in message
    assert "Pass the --backbone the weights were saved from" in message


def test_safetensors_of_another_text_tower_are_refused_from_the_header(tmp_path):
    source = narrow(tmp_path, "source", text_cfg={"width": 64, "layers": 1})
    backbone.register_config_file(str(source))
    with backbone.random_init_quietly():
        state = open_clip.create_model("source").state_dict()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(BackboneError) as err:
        load_backbone("clviz-tiny", pretrained=path, device="cpu")
    assert "text width 64, 1 layer," in str(err.value)
    assert "--backbone clviz-tiny has image tower width 128, 4 layers" in str(err.value)


def test_matching_weights_still_load_in_open_clips_layouts(tmp_path):
    """No false alarm for what open_clip's load adapts: a ``state_dict`` wrapper, a
    ``module.`` prefix, bf16 tensors, position embeddings of another image size."""
    small = narrow(tmp_path, "small")
    weights = save_random_weights(small, tmp_path / "small.pt")
    state = {k: v.float() for k, v in torch.load(weights, weights_only=True).items()}
    model, _, _ = load_backbone(str(small), pretrained=weights, device="cpu")
    torch.testing.assert_close(model.visual.proj, state["visual.proj"])
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    model, _, _ = load_backbone(str(small), pretrained=wrapped, device="cpu")
    torch.testing.assert_close(model.visual.proj, state["visual.proj"])
    bigger = narrow(tmp_path, "bigger", vision_cfg={"image_size": 64})  # resized: fp32 only
    model, _, _ = load_backbone(str(bigger), pretrained=wrapped, device="cpu")
    assert model.visual.positional_embedding.shape == (65, 64)


def test_unreadable_weights_are_still_reported_by_the_load(tmp_path):
    junk = write_old(tmp_path / "junk.pt", b"not a checkpoint")
    with pytest.raises(BackboneError, match="is not a weights file clviz can read"):
        load_backbone("clviz-tiny", pretrained=junk, device="cpu")
    assert backbone.weights_shapes(junk) is None


def test_describe_shapes_of_the_bundled_weights():
    shapes = backbone.weights_shapes(backbone.TINY_WEIGHTS)
    assert backbone.describe_shapes(shapes) == (
        "image tower width 128, 4 layers, patch 8; text width 128, 4 layers, vocabulary 49408; "
        "embedding 128"
    )
    assert backbone.describe_shapes({"epoch": ()}).startswith("no open_clip")
