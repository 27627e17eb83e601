"""One constructor for every backbone: the bundled tiny CLIP or any open_clip architecture.

:func:`load_backbone` goes through open_clip's own factory, so the tiny CLIP is an ordinary
open_clip ``CLIP`` (its architecture is registered from ``clviz/configs/clviz-tiny.json``) and a
pretrained ViT-B/16 loads through the very same call. What is added on top:

- the bundled weights are checked against their manifest (sha256) before use, and a missing or
  corrupt file names the command that rebuilds it;
- a hub tag (``pretrained="openai"``) is looked up in the local cache first, and when the hub
  cannot be reached the call fails within seconds with instructions for a local weights file,
  instead of open_clip's minute of retries;
- a config ``.json`` is checked value by value before anything is built
  (:func:`~clviz.backbone_config.check_backbone_config`), and a local weights file is compared
  with the asked architecture from its tensor shapes before open_clip loads it, so either
  mistake is one line naming the file instead of a traceback.

:func:`input_fingerprint` is what a run's identity records about its backbone: the content
(sha256) of the config file and the weights, not their paths, so a file replaced in place is a
new run. Digests are cached by file stat (:func:`file_digest`), so a 600 MB file is hashed once.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import open_clip
import torch
from torch import nn

from clviz.backbone_config import BackboneError, check_backbone_config, describe_shapes

PACKAGE_DIR = Path(__file__).resolve().parent
TINY_NAME = "clviz-tiny"
# The tiny CLIP's architectures, all loading the bundled weights: the 64 px one is the same
# network on an 8 x 8 patch grid, open_clip interpolating the 4 x 4 position embeddings.
TINY_VARIANTS = (TINY_NAME, f"{TINY_NAME}-64")
TINY_WEIGHTS = PACKAGE_DIR / "weights" / f"{TINY_NAME}.safetensors"
TINY_MANIFEST = PACKAGE_DIR / "weights" / f"{TINY_NAME}.json"
REBUILD_COMMAND = "python data_prep/pretrain_tiny_clip.py"
HUB_PROBE_TIMEOUT_S = 3.0
DIGEST_CACHE_VERSION = 1
DIGEST_CACHE_ENTRIES = 1000  # the most recent files kept in the on-disk digest cache
RACY_NS = 2_000_000_000  # a file modified this recently may change again within one mtime tick


@contextmanager
def random_init_quietly() -> Iterator[None]:
    """Silence open_clip's "No pretrained weights loaded" warning while building a model whose
    random weights are intended (parameter counting, pretraining from scratch)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


@lru_cache(maxsize=1)
def register_tiny_config() -> None:
    """Make ``clviz-tiny`` (and its 64 px variant) known open_clip architectures (idempotent)."""
    for name in TINY_VARIANTS:
        if name not in open_clip.list_models():
            open_clip.add_model_config(PACKAGE_DIR / "configs" / f"{name}.json")


def register_config_file(name: str) -> str:
    """``name`` itself, or, when it is the path of an open_clip model config (``.json``), the
    architecture that file defines (registered with open_clip under the file's stem).

    This is how a custom architecture (a narrower ViT for a quick test, say) goes through
    exactly the same open_clip factory as ViT-B/16.
    """
    path = Path(name)
    if path.suffix != ".json":
        return name
    _register_config(path, check_backbone_config(path))
    return path.stem


def _register_config(path: Path, config: dict) -> None:
    """Make the checked ``config`` open_clip's architecture ``path.stem``.

    The checked dict goes into open_clip's registry itself: ``add_model_config`` would keep the
    path and re-read every file ever added at each later registration, so one config file edited
    into invalid JSON afterwards would break every later load, and the architecture built could
    differ from the content that was checked and fingerprinted.
    """
    registry = getattr(getattr(open_clip, "factory", None), "_MODEL_CONFIGS", None)
    if isinstance(registry, dict):
        registry[path.stem] = copy.deepcopy(config)
    else:  # another open_clip layout: its public (re-reading) registration
        open_clip.add_model_config(path)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_DIGESTS: dict[str, dict] = {}  # this process's digests: resolved path -> {stamp, sha256}


def digest_cache_path() -> Path:
    """The on-disk digest cache, shared by every process using this results root."""
    from clviz.core.store import results_root

    return results_root() / "_cache" / "digests.json"


def _stamp(stat: os.stat_result) -> list[int]:
    """What must not change for a cached digest to hold: size, mtime, ctime and inode (a file
    moved over another one keeps its mtime but gets a new inode and ctime)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _read_digest_cache() -> dict[str, dict]:
    """The on-disk cache's entries; a missing or damaged cache is empty (it only saves time)."""
    try:
        data = json.loads(digest_cache_path().read_text())
        files = data["files"] if data.get("version") == DIGEST_CACHE_VERSION else {}
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {key: entry for key, entry in files.items() if _valid_entry(entry)}


def _valid_entry(entry: object) -> bool:
    """Whether a cache entry has the shape :func:`file_digest` writes."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) is not None
        and isinstance(entry.get("stamp"), list)
    )


def _remember_digest(key: str, entry: dict) -> None:
    """Keep a digest in this process and in the on-disk cache (the newest entries, atomically;
    a cache that cannot be written is skipped: it only saves time)."""
    from clviz.core.io import write_json

    _DIGESTS[key] = entry
    files = _read_digest_cache()
    files.pop(key, None)
    files[key] = entry
    kept = dict(list(files.items())[-DIGEST_CACHE_ENTRIES:])
    try:
        write_json(digest_cache_path(), {"version": DIGEST_CACHE_VERSION, "files": kept})
    except OSError as err:
        logging.getLogger(__name__).debug("digest cache not written: %s", err)


def file_digest(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, hashed once per version of the file.

    Cached in this process and in :func:`digest_cache_path`, keyed by the resolved path and
    re-hashed when its size, mtime, ctime or inode change. A file modified within the last
    :data:`RACY_NS` is hashed but not cached: another write within the same timestamp tick
    could change its bytes without changing its stat.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key, stamp = str(resolved), _stamp(stat)
    entry = _DIGESTS.get(key)
    if entry is None or entry["stamp"] != stamp:
        entry = _read_digest_cache().get(key)
    if entry is not None and entry["stamp"] == stamp:
        _DIGESTS[key] = entry
        return entry["sha256"]
    digest = sha256_of(resolved)
    if time.time_ns() - stat.st_mtime_ns > RACY_NS and _stamp(resolved.stat()) == stamp:
        _remember_digest(key, {"stamp": stamp, "sha256": digest})
    return digest


def read_manifest() -> dict:
    """The bundled tiny CLIP's manifest: architecture, data seed, steps, loss, sha256, command."""
    if not TINY_MANIFEST.is_file():
        raise BackboneError(
            f"The manifest of the bundled tiny CLIP is missing ({TINY_MANIFEST}). "
            f"Rebuild the weights and manifest with: {REBUILD_COMMAND}"
        )
    try:
        return json.loads(TINY_MANIFEST.read_text())
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"The manifest of the bundled tiny CLIP cannot be read ({TINY_MANIFEST}: {err}). "
            f"Restore it from git (git checkout -- clviz/weights) or rebuild it with: "
            f"{REBUILD_COMMAND}"
        ) from None


def verify_tiny_weights() -> Path:
    """The bundled weights file, after checking that it exists and matches the manifest."""
    if not TINY_WEIGHTS.is_file():
        raise BackboneError(
            f"The bundled tiny CLIP weights are missing ({TINY_WEIGHTS}). "
            f"Rebuild them with: {REBUILD_COMMAND}"
        )
    expected = read_manifest().get("sha256")
    actual = sha256_of(TINY_WEIGHTS)
    if actual != expected:
        raise BackboneError(
            f"The bundled tiny CLIP weights are corrupt: sha256 {actual[:12]}... does not match "
            f"the manifest's {str(expected)[:12]}... ({TINY_WEIGHTS}). "
            f"Restore them from git (git checkout -- clviz/weights) or rebuild them with: "
            f"{REBUILD_COMMAND}"
        )
    return TINY_WEIGHTS


def _hub_reachable() -> bool:
    """Whether the model hub answers a TCP connection within a few seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _cached_hub_file(pretrained_cfg: dict) -> str | None:
    """The local path of a tag's weights if a previous download left them in the HF cache."""
    from huggingface_hub import try_to_load_from_cache

    hub = pretrained_cfg.get("hf_hub", "")
    if not hub:
        return None
    repo_id, filename = os.path.split(hub)
    candidates = [filename] if filename else []
    candidates += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    cache_dir = os.environ.get("HF_HUB_CACHE") or None  # read now, not at import
    for name in candidates:
        path = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(path, str):
            return path
    return None


def _unknown_pretrained(name: str, text: str) -> BackboneError:
    """The error for a ``pretrained`` that is neither a file nor one of ``name``'s tags."""
    tags = open_clip.list_pretrained_tags_by_model(name)
    return BackboneError(
        f"pretrained={text!r} is neither an existing weights file nor a known tag of "
        f"{name!r}. Known tags: {', '.join(tags) or 'none'}. Pass the path of a local "
        f"checkpoint file (.safetensors, .bin or .pt) to load your own weights."
    )


def _unknown_backbone(name: str) -> BackboneError:
    """The error for a backbone that is no open_clip architecture and no config file."""
    return BackboneError(
        f"unknown backbone {name!r}. Use {TINY_NAME!r} (bundled), an open_clip "
        "architecture such as 'ViT-B-16' (open_clip.list_models() lists them all), or the "
        "path of an open_clip model config (.json)."
    )


def resolve_weights(name: str, pretrained: str | os.PathLike | None) -> str | None:
    """Turn ``pretrained`` (None, a file, or a hub tag) into what open_clip should load.

    Returns a local file path, a tag open_clip can download right now, or None (random init).
    """
    if name in TINY_VARIANTS and pretrained is None:
        return str(verify_tiny_weights())
    if pretrained is None:
        return None
    text = str(pretrained)
    if os.path.isfile(text):
        return text
    tag_cfg = open_clip.get_pretrained_cfg(name, text)
    if not tag_cfg:
        raise _unknown_pretrained(name, text)
    cached = _cached_hub_file(tag_cfg)
    if cached:
        return cached
    if not _hub_reachable():
        raise BackboneError(
            f"Cannot download the {name!r} weights tagged {text!r}: the model hub is not reachable "
            "from this machine (clviz checks for a few seconds instead of retrying for a minute). "
            "On a machine with network, save them once, e.g. "
            f"python -c \"import open_clip; open_clip.create_model('{name}', "
            f"pretrained='{text}')\" "
            "and copy the file from the Hugging Face cache; then pass its path: "
            f"load_backbone('{name}', pretrained='/path/to/open_clip_pytorch_model.bin') "
            "or --pretrained /path/to/file on the command line."
        )
    return text


def _config_fingerprint(name: str) -> tuple[str, dict[str, str]]:
    """The architecture ``name`` stands for, and what identifies its config's content: the
    sha256 of a config file (checked and registered first), or open_clip's built-in config."""
    if Path(name).suffix == ".json":
        architecture = register_config_file(name)
        return architecture, {"architecture": architecture, "config_sha256": file_digest(name)}
    if name in TINY_VARIANTS:
        bundled = PACKAGE_DIR / "configs" / f"{name}.json"
        return name, {"architecture": name, "config_sha256": file_digest(bundled)}
    if name not in open_clip.list_models():
        raise _unknown_backbone(name)
    return name, {"architecture": name, "config": f"open_clip {open_clip.__version__} built-in"}


def _weights_fingerprint(name: str, pretrained: str | os.PathLike | None) -> dict[str, str]:
    """What identifies the weights' content: the bundled manifest's sha256, a local file's
    sha256, or a hub tag (with its cached file's sha256 once downloaded)."""
    if pretrained is None:
        if name in TINY_VARIANTS:
            return {"weights": "bundled", "weights_sha256": str(read_manifest().get("sha256"))}
        return {"weights": "random init"}
    text = str(pretrained)
    if os.path.isfile(text):
        return {"weights": "file", "weights_sha256": file_digest(text)}
    tag_cfg = open_clip.get_pretrained_cfg(name, text)
    if not tag_cfg:
        raise _unknown_pretrained(name, text)
    out = {"weights": "tag", "weights_tag": text}
    cached = _cached_hub_file(tag_cfg)
    if cached:
        out["weights_sha256"] = file_digest(cached)
    return out


def input_fingerprint(name: str, pretrained: str | os.PathLike | None) -> dict[str, str]:
    """What a run's identity must record about its backbone: the content of its inputs, not
    their paths, so that a weights file or config replaced at the same path is a new run.

    ``name`` and ``pretrained`` are those of :func:`load_backbone`. The result holds
    ``architecture``; ``config_sha256`` for a config ``.json`` (checked first, so a bad one
    fails here, before any work) or the bundled tiny config, else ``config`` naming open_clip's
    built-in; ``weights`` (``bundled``, ``file``, ``tag`` or ``random init``) with
    ``weights_sha256`` (the manifest's for the bundle, which :func:`verify_tiny_weights` checks
    at load) and ``weights_tag`` for a hub tag. Digests are cached (:func:`file_digest`).
    """
    register_tiny_config()
    architecture, out = _config_fingerprint(str(name))
    out.update(_weights_fingerprint(architecture, pretrained))
    return out


_RESIZED = {"visual.positional_embedding", "positional_embedding", "text.positional_embedding"}
_POSITION_IDS = "text.transformer.embeddings.position_ids"


def _torch_state(path: str) -> object:
    """A torch checkpoint's content, memory-mapped where the format allows (only the shapes
    are read), tensors only (``weights_only``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=True)


def weights_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]] | None:
    """The tensor shapes of a weights file, keyed as open_clip will load them (a
    ``state_dict`` wrapper unwrapped, a ``module.`` prefix dropped), or None when it is no state
    dict that can be read (open_clip's own load then reports it). A safetensors file's shapes
    come from its header alone."""
    text = str(path)
    try:
        if text.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(text, framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        state = _torch_state(text)
    except Exception:  # any unreadable file: open_clip's own load reports it
        return None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state:
        return None
    shapes = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else () for k, v in state.items()}
    if next(iter(shapes)).startswith("module"):
        shapes = {k[7:]: v for k, v in shapes.items()}
    return shapes


def _model_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The state dict shapes of architecture ``name``, built on the meta device (no memory)."""
    with random_init_quietly(), torch.device("meta"):
        model = open_clip.create_model(name, device="meta", pretrained_text=False)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _shape(shape: tuple[int, ...]) -> str:
    """A shape as ``256x3x8x8``."""
    return "x".join(map(str, shape)) or "a scalar"


def _first_difference(found: Mapping[str, tuple], asked: Mapping[str, tuple]) -> str | None:
    """The first way the file's tensors differ from the model's beyond what open_clip's load
    adapts (position embeddings of another length, a scalar logit scale, a missing logit bias,
    position ids), or None when they fit."""
    for key in (k for k in asked if k in found):  # in the model's order: the first layer first
        a, b = found[key], asked[key]
        if key in _RESIZED:
            a, b = a[1:], b[1:]
        elif key in ("logit_scale", "logit_bias"):
            a, b = (torch.Size(a).numel(),), (torch.Size(b).numel(),)
        if a != b:
            return f"{key} is {_shape(found[key])} in the file, {_shape(asked[key])} here"
    missing = [k for k in asked if k not in found and k != "logit_bias"]
    if missing:
        return f"the file lacks {len(missing)} tensors, e.g. {missing[0]}"
    unexpected = [k for k in found if k not in asked and k != _POSITION_IDS]
    if unexpected:
        return f"the file has {len(unexpected)} tensors the model lacks, e.g. {unexpected[0]}"
    return None


def check_weights_architecture(name: str, weights: str, asked: str | None = None) -> None:
    """Refuse, in one line, a weights file saved from another architecture than ``name``.

    Compares the file's tensor shapes (:func:`weights_shapes`) with ``name``'s, built on the
    meta device, before open_clip loads anything, and names what each side holds (widths,
    layers, patch size, vocabulary, embedding) and the fix. ``asked`` is how the user named the
    backbone (a config path), for the message. Files open_clip converts on load (another
    text-tower layout, numpy weights) and timm or Hugging Face towers are left to open_clip.
    """
    config = open_clip.get_model_config(name) or {}
    foreign = config.get("vision_cfg", {}).get("timm_model_name")
    if foreign or config.get("text_cfg", {}).get("hf_model_name"):
        return
    found = None if Path(weights).suffix in (".npz", ".npy") else weights_shapes(weights)
    if not found:
        return
    model = _model_shapes(name)
    if "positional_embedding" in found and "positional_embedding" not in model:
        return  # open_clip converts this text-tower layout on load
    difference = _first_difference(found, model)
    if difference is None:
        return
    label = f"--backbone {asked or name}"
    held = describe_shapes(found)
    if held.startswith("no open_clip"):
        raise BackboneError(
            f"--pretrained {weights} holds {held}, not the weights of {label} ({difference}); "
            "pass an open_clip checkpoint (a state dict, possibly under 'state_dict') saved "
            f"from {asked or name}"
        )
    raise BackboneError(
        f"--pretrained {weights} holds another architecture than {label}: the file has "
        f"{held}; {label} has {describe_shapes(model)} ({difference}). "
        "Pass the --backbone the weights were saved from (an open_clip name, or a config .json "
        f"with the file's numbers), or a --pretrained file saved from {asked or name}"
    )


def load_resized(model: nn.Module, weights: Path) -> None:
    """Load the bundled (fp16) weights into a tiny CLIP built for another image size: open_clip
    interpolates the image position embeddings to the new patch grid (in fp32; its resize has
    no half-precision kernel)."""
    from safetensors.torch import load_file

    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    open_clip.model.resize_pos_embed(state, model)
    model.load_state_dict(state)


def load_backbone(
    name: str = TINY_NAME,
    pretrained: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> tuple[nn.Module, object, object]:
    """Build a CLIP and return ``(model, preprocess, tokenizer)``, the model in eval mode.

    Args:
        name: an open_clip architecture (``open_clip.list_models()``), ``clviz-tiny`` by
            default, or the path of an open_clip model config file (``.json``, checked by
            :func:`~clviz.backbone_config.check_backbone_config` before anything is built).
        pretrained: ``None`` (bundled weights for ``clviz-tiny``, random init otherwise), a hub
            tag such as ``"openai"``, or the path of a local checkpoint file (whose tensor
            shapes must be those of ``name``: :func:`check_weights_architecture`).
        device: where to put the model: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``;
            None reads ``$CLVIZ_DEVICE`` (default ``auto``: CUDA, then MPS, then the CPU).
    """
    from clviz.core.device import resolve_device

    device = resolve_device(device)
    register_tiny_config()
    asked, name = str(name), register_config_file(str(name))
    if name not in open_clip.list_models():
        raise _unknown_backbone(name)
    weights = resolve_weights(name, pretrained)
    resized = name in TINY_VARIANTS and name != TINY_NAME and pretrained is None
    if pretrained is not None and weights is not None and os.path.isfile(weights):
        check_weights_architecture(name, weights, asked)
    try:
        with random_init_quietly() if resized else contextlib.nullcontext():
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=None if resized else weights, device=device
            )
        if resized:
            load_resized(model, Path(weights))
    except RuntimeError as err:
        raise BackboneError(f"could not load {name!r} with pretrained={weights!r}: {err}") from err
    except Exception as err:  # a local file that is no checkpoint: torch's unpickling errors
        if weights is None or not os.path.isfile(weights):
            raise
        raise BackboneError(
            f"--pretrained {weights} is not a weights file clviz can read for {name!r} "
            f"({type(err).__name__}: {str(err).split('.')[0] or 'unreadable'}); "
            "pass an open_clip checkpoint (.safetensors, .bin or .pt) or a hub tag"
        ) from None
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)


def image_normalization(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The model's pixel mean, std (each 1 x 3 x 1 x 1) and square input size."""
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else int(size)
    return mean, std, size


def to_model_input(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """uint8 images (N x 3 x H x W) -> normalised float input, resized to the model's size.

    The batch equivalent of open_clip's PIL ``preprocess`` for the world's square images.
    """
    mean, std, size = image_normalization(model)
    device = next(model.parameters()).device
    x = images.to(device=device, dtype=torch.float32) / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bicubic", align_corners=False, antialias=True
        ).clamp_(0, 1)
    return (x - mean.to(device)) / std.to(device)
