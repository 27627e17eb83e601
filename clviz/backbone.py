"""One constructor for every backbone: the bundled tiny CLIP or any open_clip architecture.

:func:`load_backbone` goes through open_clip's own factory, so the tiny CLIP is an ordinary
open_clip ``CLIP`` (its architecture is registered from ``clviz/configs/clviz-tiny.json``) and a
pretrained ViT-B/16 loads through the very same call. Two things are added on top:

- the bundled weights are checked against their manifest (sha256) before use, and a missing or
  corrupt file names the command that rebuilds it;
- a hub tag (``pretrained="openai"``) is looked up in the local cache first, and when the hub
  cannot be reached the call fails within seconds with instructions for a local weights file,
  instead of open_clip's minute of retries.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import open_clip
import torch
from torch import nn

PACKAGE_DIR = Path(__file__).resolve().parent
TINY_NAME = "clviz-tiny"
# The tiny CLIP's architectures, all loading the bundled weights: the 64 px one is the same
# network on an 8 x 8 patch grid, open_clip interpolating the 4 x 4 position embeddings.
TINY_VARIANTS = (TINY_NAME, f"{TINY_NAME}-64")
TINY_WEIGHTS = PACKAGE_DIR / "weights" / f"{TINY_NAME}.safetensors"
TINY_MANIFEST = PACKAGE_DIR / "weights" / f"{TINY_NAME}.json"
REBUILD_COMMAND = "python data_prep/pretrain_tiny_clip.py"
HUB_PROBE_TIMEOUT_S = 3.0


class BackboneError(RuntimeError):
    """A backbone or its weights could not be loaded; the message says how to fix it."""


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
    if not path.is_file():
        raise BackboneError(f"backbone config {name!r} does not exist; pass an existing .json file")
    open_clip.add_model_config(path)
    return path.stem


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise BackboneError(
            f"pretrained={text!r} is neither an existing weights file nor a known tag of "
            f"{name!r}. Known tags: {', '.join(tags) or 'none'}. Pass the path of a local "
            f"checkpoint file (.safetensors, .bin or .pt) to load your own weights."
        )
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
            default, or the path of an open_clip model config file (``.json``).
        pretrained: ``None`` (bundled weights for ``clviz-tiny``, random init otherwise), a hub
            tag such as ``"openai"``, or the path of a local checkpoint file.
        device: where to put the model: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``;
            None reads ``$CLVIZ_DEVICE`` (default ``auto``: CUDA, then MPS, then the CPU).
    """
    from clviz.core.device import resolve_device

    device = resolve_device(device)
    register_tiny_config()
    name = register_config_file(name)
    if name not in open_clip.list_models():
        raise BackboneError(
            f"unknown backbone {name!r}. Use {TINY_NAME!r} (bundled), an open_clip "
            "architecture such as 'ViT-B-16' (open_clip.list_models() lists them all), or the "
            "path of an open_clip model config (.json)."
        )
    weights = resolve_weights(name, pretrained)
    resized = name in TINY_VARIANTS and name != TINY_NAME and pretrained is None
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
