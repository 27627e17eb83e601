"""Checks of an open_clip backbone config (``--backbone path.json``) before anything is built.

open_clip reads a model config with ``CLIPVisionCfg(**vision_cfg)`` and builds the towers from
it without checking a value: ``"width": "128"`` fails deep inside ``nn.Conv2d`` with a traceback,
a zero width gives an empty tensor error, a typo such as ``10**9`` tries to allocate terabytes.
:func:`check_backbone_config` reads the file once and refuses it in one line naming the file,
the key path (``vision_cfg.width``), the value and what open_clip needs there, mirroring what
open_clip's ``model.py`` and ``transformer.py`` require (integer sizes, head counts dividing
widths, a patch grid covering the image). :func:`estimate_parameters` counts the parameters the
config describes without building it, so a size that cannot fit is refused before allocating.
:func:`describe_shapes` summarises the architecture a state dict holds, from its shapes alone,
for the message about weights of another architecture.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from clviz.errors import ClvizError

MAX_PARAMETERS = 20_000_000_000  # refused above this: no CLIP clviz teaches with comes close
VISION_POOL_TYPES = ("tok", "avg", "none")
TEXT_POOL_TYPES = ("first", "last", "argmax", "eos", "none")
BOOLEAN_KEYS = frozenset(
    {
        *("quick_gelu", "nonscalar_logit_scale", "output_dict", "custom_text", "no_ln_pre"),
        *("final_ln_after_pool", "output_tokens", "qk_norm", "scaled_cosine_attn", "scale_heads"),
        *("scale_attn_inner", "scale_attn", "scale_fc", "embed_cls", "no_causal_mask"),
        *("proj_bias", "timm_model_pretrained", "hf_model_pretrained"),
    }
)


class BackboneError(ClvizError, RuntimeError):
    """A backbone or its weights could not be loaded; the message says how to fix it."""


def _kind(value: Any) -> str:
    """The JSON type of a value, as the user wrote it (true is a boolean, "128" a string)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, int):
        return ""
    names = {str: "a string", list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """A value as JSON on one line, cut to 60 characters, with its type unless an int."""
    text = json.dumps(value, default=str)
    text = text if len(text) <= 60 else text[:57] + "..."
    kind = _kind(value)
    return f"{text} ({kind})" if kind else text


class _Config:
    """One config file being checked: where it is, and how a problem in it is reported."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, value: Any, expected: str) -> NoReturn:
        """Refuse the file: one line naming it, the key path, the value and what is expected."""
        raise BackboneError(
            f"backbone config {self.path}: {key} = {_shown(value)}; expected {expected}"
        )

    def missing(self, key: str, expected: str) -> NoReturn:
        """Refuse the file for a key open_clip cannot do without."""
        raise BackboneError(
            f"backbone config {self.path}: {key} is missing; expected {expected} (an open_clip "
            "model config has embed_dim, vision_cfg and text_cfg)"
        )

    def integer(self, section: Mapping, key: str, default: Any, *, minimum: int = 1) -> int:
        """``section[key]`` (or its default), which must be an int (not a bool) >= minimum."""
        value = section.get(key.rsplit(".", 1)[-1], default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            self.fail(key, value, what)
        return value

    def number(self, section: Mapping, key: str, default: Any, *, low: float = 0.0) -> float:
        """``section[key]`` (or its default), a finite number (not a bool) above ``low``."""
        value = section.get(key.rsplit(".", 1)[-1], default)
        bad = isinstance(value, bool) or not isinstance(value, int | float)
        if bad or not math.isfinite(value) or value <= low:
            self.fail(key, value, f"a number above {low:g}")
        return float(value)

    def size_pair(self, section: Mapping, key: str, default: Any) -> tuple[int, int]:
        """A size open_clip turns into (height, width): a positive int or a list of two."""
        value = section.get(key.rsplit(".", 1)[-1], default)
        items = value if isinstance(value, list) and len(value) == 2 else [value, value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items):
            self.fail(key, value, "a positive integer or a list of two positive integers")
        return items[0], items[1]

    def choice(self, section: Mapping, key: str, default: Any, allowed: tuple) -> Any:
        """``section[key]`` (or its default), which must be one of ``allowed``."""
        value = section.get(key.rsplit(".", 1)[-1], default)
        if value not in allowed or isinstance(value, bool) != isinstance(default, bool):
            self.fail(key, value, "one of " + ", ".join(json.dumps(a) for a in allowed))
        return value

    def known_keys(self, section: Mapping, prefix: str, known: set[str]) -> None:
        """Refuse a key open_clip would reject with "unexpected keyword argument"."""
        for key, value in section.items():
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(f"{prefix}{key}", value, f"a key open_clip knows{hint}")

    def flags(self, section: Mapping, prefix: str) -> None:
        """Every true/false setting present must be a JSON boolean."""
        for key in sorted(BOOLEAN_KEYS):
            if key in section and not isinstance(section[key], bool):
                self.fail(f"{prefix}{key}", section[key], "true or false")

    def optional(self, section: Mapping, key: str, kinds: tuple, expected: str) -> None:
        """A setting that may be null or absent, else of one of ``kinds`` (bools excluded)."""
        value = section.get(key.rsplit(".", 1)[-1])
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            self.fail(key, value, expected)


def _read_json(path: Path) -> dict:
    """The file's JSON object, or a one-line BackboneError saying why it is not one."""
    if not path.is_file():
        raise BackboneError(f"backbone config {path} does not exist; pass an existing .json file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BackboneError(
            f"backbone config {path} is not valid JSON (line {err.lineno}, column {err.colno}: "
            f"{err.msg}); fix the file or pass an open_clip architecture name"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise BackboneError(f"backbone config {path} cannot be read ({err})") from None
    if not isinstance(data, dict):
        _Config(path).fail("the file", data, "a JSON object with embed_dim, vision_cfg, text_cfg")
    return data


def _field_names(cls: type) -> set[str]:
    """The settings an open_clip config dataclass accepts."""
    return {field.name for field in dataclasses.fields(cls)}


def _model_keys(data: Mapping) -> set[str]:
    """The top-level settings the model class open_clip would pick accepts (CLIP, CustomTextCLIP
    or CoCa: open_clip passes them as keyword arguments), plus ``custom_text`` that it pops."""
    import open_clip

    cls = open_clip.CLIP
    if data.get("custom_text") or "hf_model_name" in (data.get("text_cfg") or {}):
        cls = open_clip.CoCa if "multimodal_cfg" in data else open_clip.CustomTextCLIP
    names = set(inspect.signature(cls.__init__).parameters) - {"self", "cast_dtype", "kwargs"}
    return names | {"custom_text"}


def _section(cfg: _Config, data: Mapping, key: str) -> dict:
    """``data[key]``, which must be a JSON object."""
    if key not in data:
        cfg.missing(key, "an object")
    if not isinstance(data[key], dict):
        cfg.fail(key, data[key], "an object")
    return data[key]


def _check_vit(cfg: _Config, vision: Mapping, embed_dim: int) -> None:
    """The settings open_clip's VisionTransformer reads (image tower of a ViT config)."""
    p = "vision_cfg."
    width = cfg.integer(vision, p + "width", 768)
    cfg.integer(vision, p + "layers", 12)
    head_width = cfg.integer(vision, p + "head_width", 64)
    heads = width // head_width
    if heads < 1:
        cfg.fail(
            p + "head_width",
            head_width,
            f"at most vision_cfg.width {width} (open_clip "
            "makes width // head_width attention heads, here 0)",
        )
    if width % heads:
        cfg.fail(
            p + "head_width",
            head_width,
            f"a divisor of vision_cfg.width {width} (open_clip "
            f"makes width // head_width = {heads} heads, which must divide the width)",
        )
    mlp_ratio = cfg.number(vision, p + "mlp_ratio", 4.0)
    if int(width * mlp_ratio) < 1:
        cfg.fail(p + "mlp_ratio", mlp_ratio, f"a ratio giving an MLP width >= 1 at width {width}")
    patch = cfg.size_pair(vision, p + "patch_size", 16)
    image = cfg.size_pair(vision, p + "image_size", 224)
    for side, size, step in zip(("height", "width"), image, patch, strict=True):
        if size % step:
            cfg.fail(
                p + "patch_size",
                vision.get("patch_size", 16),
                f"a patch size dividing image_size {_shown(vision.get('image_size', 224))} "
                f"(the image {side} {size} is not a multiple of {step})",
            )
    square = image[0] // patch[0] == image[1] // patch[1] and width % 4 == 0
    if vision.get("pos_embed_type", "learnable") == "sin_cos_2d" and not square:
        cfg.fail(p + "pos_embed_type", "sin_cos_2d", "a square patch grid and a width % 4 == 0")
    cfg.choice(vision, p + "pos_embed_type", "learnable", ("learnable", "sin_cos_2d"))
    cfg.choice(vision, p + "pool_type", "tok", VISION_POOL_TYPES)
    pool = vision.get("attentional_pool", False)
    if pool not in (False, True, "parallel", "cascade"):
        cfg.fail(p + "attentional_pool", pool, 'false, true, "parallel" or "cascade"')
    if pool:
        cfg.integer(vision, p + "attn_pooler_queries", 256)
        pool_heads = cfg.integer(vision, p + "attn_pooler_heads", 8)
        if embed_dim % pool_heads:
            cfg.fail(p + "attn_pooler_heads", pool_heads, f"a divisor of embed_dim {embed_dim}")


def _check_resnet(cfg: _Config, vision: Mapping) -> None:
    """The settings open_clip's ModifiedResNet reads (``layers`` is a list of four)."""
    p = "vision_cfg."
    layers = vision["layers"]
    if len(layers) != 4 or not all(isinstance(n, int) and not isinstance(n, bool) for n in layers):
        cfg.fail(p + "layers", layers, "an integer (ViT) or a list of four integers (ResNet)")
    if min(layers) < 1:
        cfg.fail(p + "layers", layers, "four positive block counts")
    width = cfg.integer(vision, p + "width", 64, minimum=2)
    head_width = cfg.integer(vision, p + "head_width", 64)
    heads = width * 32 // head_width
    if heads < 1 or (width * 32) % heads:
        cfg.fail(p + "head_width", head_width, f"a divisor of width * 32 = {width * 32}")
    image = vision.get("image_size", 224)
    if isinstance(image, bool) or not isinstance(image, int) or image < 32:
        cfg.fail(p + "image_size", image, "an integer >= 32 (a ResNet tower takes one size)")


def _check_vision(cfg: _Config, vision: Mapping, embed_dim: int) -> None:
    """The image tower: a timm model (only its image size), a ResNet or a ViT."""
    import open_clip

    cfg.known_keys(vision, "vision_cfg.", _field_names(open_clip.model.CLIPVisionCfg))
    cfg.flags(vision, "vision_cfg.")
    cfg.optional(vision, "vision_cfg.ls_init_value", (int, float), "null or a number")
    dropout = vision.get("patch_dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        cfg.fail("vision_cfg.patch_dropout", dropout, "a fraction in [0, 1)")
    for key in ("act_kwargs", "norm_kwargs"):
        cfg.optional(vision, f"vision_cfg.{key}", (dict,), "null or an object")
    if vision.get("timm_model_name"):
        cfg.size_pair(vision, "vision_cfg.image_size", 224)
    elif isinstance(vision.get("layers"), list):
        _check_resnet(cfg, vision)
    else:
        _check_vit(cfg, vision, embed_dim)


def _check_text(cfg: _Config, text: Mapping) -> None:
    """The text tower: a Hugging Face model (only its context length) or open_clip's own."""
    import open_clip

    p = "text_cfg."
    cfg.known_keys(text, p, _field_names(open_clip.model.CLIPTextCfg))
    cfg.flags(text, p)
    cfg.integer(text, p + "context_length", 77)
    for key in ("tokenizer_kwargs", "act_kwargs", "norm_kwargs"):
        cfg.optional(text, p + key, (dict,), "null or an object")
    if text.get("hf_model_name"):
        return
    vocab = cfg.integer(text, p + "vocab_size", 49408)
    width = cfg.integer(text, p + "width", 512)
    heads = cfg.integer(text, p + "heads", 8)
    if width % heads:
        cfg.fail(p + "heads", heads, f"a divisor of text_cfg.width {width} (open_clip's attention)")
    cfg.integer(text, p + "layers", 12)
    cfg.number(text, p + "mlp_ratio", 4.0)
    cfg.optional(text, p + "ls_init_value", (int, float), "null or a number")
    for key, default in (("pad_id", 0), ("eos_id", 2)):
        token = cfg.integer(text, p + key, default, minimum=0)
        if token >= vocab:
            cfg.fail(p + key, token, f"a token id below vocab_size {vocab}")
    cfg.choice(text, p + "pool_type", "argmax", TEXT_POOL_TYPES)


def _check_top(cfg: _Config, data: Mapping) -> int:
    """The model-level settings; returns embed_dim."""
    cfg.known_keys(data, "", _model_keys(data))
    if "embed_dim" not in data:
        cfg.missing("embed_dim", "a positive integer")
    embed_dim = cfg.integer(data, "embed_dim", None)
    cfg.flags(data, "")
    cfg.optional(data, "init_logit_scale", (int, float), "a number")
    cfg.optional(data, "init_logit_bias", (int, float), "null or a number")
    return embed_dim


def _transformer_parameters(width: int, layers: int, mlp: int, layer_scale: bool) -> int:
    """Parameters of open_clip's Transformer: per block two LayerNorms, attention, MLP."""
    block = 4 * width + 3 * width * (width + 1) + width * (width + 1)
    block += mlp * (width + 1) + width * (mlp + 1) + (2 * width if layer_scale else 0)
    return layers * block


def _resnet_parameters(vision: Mapping, embed_dim: int) -> int:
    """Parameters of open_clip's ModifiedResNet (convolutions, batch norms, attention pool)."""
    width, layers = vision.get("width", 64), vision["layers"]
    half = width // 2
    total = 27 * half + 9 * half * half + 9 * half * width + 2 * (half + half + width)
    inplanes = width
    for stage, blocks in enumerate(layers):
        planes = width * 2**stage
        for block in range(blocks):
            total += inplanes * planes + 9 * planes * planes + planes * 4 * planes + 12 * planes
            if block == 0:  # the first block of every stage has a downsampling branch
                total += inplanes * 4 * planes + 8 * planes
            inplanes = 4 * planes
    dim, grid = width * 32, vision.get("image_size", 224) // 32
    return total + (grid * grid + 1) * dim + 3 * dim * (dim + 1) + embed_dim * (dim + 1)


def _vit_parameters(vision: Mapping, embed_dim: int) -> int:
    """Parameters of open_clip's VisionTransformer (attentional pooling approximated)."""
    width, layers = vision.get("width", 768), vision.get("layers", 12)
    patch = _pair(vision.get("patch_size", 16))
    image = _pair(vision.get("image_size", 224))
    grid = (image[0] // patch[0]) * (image[1] // patch[1])
    mlp = int(width * vision.get("mlp_ratio", 4.0))
    layer_scale = vision.get("ls_init_value") is not None
    total = 3 * patch[0] * patch[1] * width + width + (grid + 1) * width
    total += 0 if vision.get("no_ln_pre") else 2 * width
    total += _transformer_parameters(width, layers, mlp, layer_scale)
    pool_dim = width
    if vision.get("attentional_pool"):
        queries = vision.get("attn_pooler_queries", 256)
        total += queries * embed_dim + 2 * embed_dim * (embed_dim + width + 2) + 4 * embed_dim
        pool_dim = embed_dim
    return total + 2 * pool_dim + pool_dim * embed_dim


def _text_parameters(text: Mapping, embed_dim: int) -> int:
    """Parameters of open_clip's TextTransformer (0 for a Hugging Face text tower)."""
    if text.get("hf_model_name"):
        return 0
    width, layers = text.get("width", 512), text.get("layers", 12)
    mlp = int(width * text.get("mlp_ratio", 4.0))
    positions = text.get("context_length", 77) + (1 if text.get("embed_cls") else 0)
    total = text.get("vocab_size", 49408) * width + positions * width
    total += width if text.get("embed_cls") else 0
    total += _transformer_parameters(width, layers, mlp, text.get("ls_init_value") is not None)
    total += 2 * width
    if text.get("proj_type", "linear") != "none" and embed_dim:
        total += width * embed_dim + (embed_dim if text.get("proj_bias") else 0)
    return total


def _pair(value: Any) -> tuple[int, int]:
    """open_clip's ``to_2tuple`` for a size written as an int or a list of two."""
    return (value[0], value[1]) if isinstance(value, list | tuple) else (value, value)


def estimate_parameters(config: Mapping) -> dict[str, int]:
    """Parameters of the CLIP a (checked) open_clip config describes, without building it:
    ``{"vision": .., "text": .., "total": ..}``. Exact for ViT and ResNet image towers and
    open_clip's text tower; a timm or Hugging Face tower counts 0 (its size is not in the config).
    """
    embed_dim = config["embed_dim"]
    vision, text = config["vision_cfg"], config["text_cfg"]
    if vision.get("timm_model_name"):
        image = 0
    elif isinstance(vision.get("layers"), list):
        image = _resnet_parameters(vision, embed_dim)
    else:
        image = _vit_parameters(vision, embed_dim)
    words = _text_parameters(text, embed_dim)
    logits = 1 + (1 if config.get("init_logit_bias") is not None else 0)
    return {"vision": image, "text": words, "total": image + words + logits}


def _check_size(cfg: _Config, data: Mapping) -> None:
    """Refuse a config too large to build (a typo such as width 10**9) before allocating."""
    counts = estimate_parameters(data)
    context = data["text_cfg"].get("context_length", 77)
    if context * context > MAX_PARAMETERS:  # the text tower's causal mask is context^2 floats
        cfg.fail(
            "text_cfg.context_length",
            context,
            f"at most {math.isqrt(MAX_PARAMETERS)} (the text attention mask is context_length "
            "squared numbers)",
        )
    if counts["total"] <= MAX_PARAMETERS:
        return
    tower = "vision_cfg" if counts["vision"] >= counts["text"] else "text_cfg"
    section = data[tower]
    raise BackboneError(
        f"backbone config {cfg.path}: describes about {counts['total']:.3g} parameters "
        f"(image tower {counts['vision']:.3g}, text tower {counts['text']:.3g}), more than the "
        f"{MAX_PARAMETERS / 1e9:g} billion clviz builds; check {tower}.width = "
        f"{_shown(section.get('width'))} and {tower}.layers = {_shown(section.get('layers'))}"
    )


def check_backbone_config(path: str | os.PathLike) -> dict:
    """The open_clip model config in ``path``, after checking every value open_clip reads.

    Raises a one-line :class:`BackboneError` naming the file, the key path (``vision_cfg.width``),
    the value and what is expected: a JSON object with ``embed_dim``, ``vision_cfg`` and
    ``text_cfg``; integer sizes (a bool is not one) that are positive; head counts dividing the
    widths; a patch size dividing the image size; known keys only; at most
    :data:`MAX_PARAMETERS` parameters (estimated from the numbers, before allocating anything).
    """
    path = Path(path)
    data = _read_json(path)
    cfg = _Config(path)
    vision, text = _section(cfg, data, "vision_cfg"), _section(cfg, data, "text_cfg")
    embed_dim = _check_top(cfg, data)
    _check_vision(cfg, vision, embed_dim)
    _check_text(cfg, text)
    _check_size(cfg, data)
    return data


def _layer_count(shapes: Mapping[str, tuple], prefix: str) -> int:
    """How many residual blocks ``prefix.transformer.resblocks.N`` a state dict holds."""
    pattern = re.compile(rf"^{re.escape(prefix)}transformer\.resblocks\.(\d+)\.")
    found = {int(m.group(1)) for key in shapes if (m := pattern.match(key))}
    return max(found) + 1 if found else 0


def _layers(count: int) -> str:
    """``1 layer``, ``4 layers``."""
    return f"{count} layer" + ("" if count == 1 else "s")


def _describe_vision(shapes: Mapping[str, tuple]) -> str | None:
    """The image tower a state dict holds: ViT width/layers/patch, ResNet widths, or timm."""
    conv = shapes.get("visual.conv1.weight")
    if any(key.startswith("visual.layer1.") for key in shapes) and conv:
        blocks = [
            len({k.split(".")[2] for k in shapes if k.startswith(f"visual.layer{i}.")})
            for i in range(1, 5)
        ]
        return f"ResNet image tower width {2 * conv[0]}, blocks {blocks}"
    if conv and len(conv) == 4:
        mlp = shapes.get("visual.transformer.resblocks.0.mlp.c_fc.weight")
        ratio = f", MLP {mlp[0] / conv[0]:g}x" if mlp and mlp[0] != 4 * conv[0] else ""
        layers = _layer_count(shapes, "visual.")
        return f"image tower width {conv[0]}, {_layers(layers)}, patch {conv[2]}{ratio}"
    if any(key.startswith("visual.trunk.") for key in shapes):
        return "a timm image tower"
    return None


def _describe_text(shapes: Mapping[str, tuple]) -> str | None:
    """The text tower a state dict holds: width, layers and vocabulary of open_clip's own."""
    for prefix in ("", "text."):
        tokens = shapes.get(f"{prefix}token_embedding.weight")
        if tokens and len(tokens) == 2:
            layers = _layer_count(shapes, prefix)
            return f"text width {tokens[1]}, {_layers(layers)}, vocabulary {tokens[0]}"
    if any(key.startswith("text.transformer.") for key in shapes):
        return "a Hugging Face text tower"
    return None


def describe_shapes(shapes: Mapping[str, tuple]) -> str:
    """The architecture a CLIP state dict holds, from its tensor shapes alone, in words:
    ``image tower width 256, 4 layers, patch 8; text width 256, 4 layers, vocabulary 49408;
    embedding 128``. Used for both sides of the message about weights of another architecture.
    """
    parts = [part for part in (_describe_vision(shapes), _describe_text(shapes)) if part]
    projection = shapes.get("text_projection") or shapes.get("text.text_projection")
    projection = projection or shapes.get("visual.proj")
    if projection and len(projection) == 2:
        parts.append(f"embedding {projection[1]}")
    if not parts:
        keys = ", ".join(list(shapes)[:3]) or "nothing"
        return f"no open_clip CLIP tensors (keys: {keys}{', ...' if len(shapes) > 3 else ''})"
    return "; ".join(parts)
