"""A memory estimate before any work: sizes that cannot fit are refused in a second.

A typo such as ``{"experts": 1000000}`` would otherwise allocate for a minute before failing
with a traceback. Each method says how many parameters it adds to a backbone of a given shape
(:meth:`~clviz.core.method.Method.added_parameters`); the trainable ones cost their weight,
their gradient and AdamW's two moments, four floats each.
"""

from __future__ import annotations

import os
from typing import Any

import open_clip

from clviz.backbone import register_config_file, register_tiny_config
from clviz.core.config import RunConfig
from clviz.core.method import TowerShape
from clviz.core.validation import OptionError
from clviz.methods import get_method
from clviz.methods.registry import make_options

BYTES_PER_TRAINED_PARAMETER = 16  # fp32 weight, gradient and AdamW's two moments


def backbone_shape(name: str) -> dict[str, TowerShape]:
    """Width and depth of each tower of the open_clip architecture ``name`` (from its config,
    without building it)."""
    register_tiny_config()
    cfg: dict[str, Any] = open_clip.get_model_config(register_config_file(name)) or {}
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    return {
        "image": TowerShape(int(vision.get("width", 768)), int(vision.get("layers", 12))),
        "text": TowerShape(int(text.get("width", 512)), int(text.get("layers", 12))),
    }


def physical_memory() -> int | None:
    """Bytes of memory of this machine (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: RunConfig, tasks: int) -> None:
    """Refuse ``config`` when what its method adds for ``tasks`` tasks, trained, needs more
    memory than the machine has; the message names the options and the estimate."""
    cls = get_method(config.method)
    options = make_options(cls, config.options)
    added = cls.added_parameters(options, backbone_shape(config.backbone), tasks)
    need, have = added * BYTES_PER_TRAINED_PARAMETER, physical_memory()
    if have is None or need <= have:
        return
    sizes = ", ".join(f"{k} {v:,}" for k, v in sorted(config.options.items()) if isinstance(v, int))
    raise OptionError(
        f"{config.method} with {sizes or 'its default sizes'} adds {added:,} parameters to "
        f"{config.backbone}: about {need / 2**30:,.0f} GiB to train, more than this machine's "
        f"{have / 2**30:,.0f} GiB; choose smaller sizes"
    )
