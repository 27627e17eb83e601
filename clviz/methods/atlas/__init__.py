"""ATLAS (Li et al., arXiv 2410.10923): two-stage adapters with keys, per-task queries and
alpha weights, on CLIP.

- :mod:`~clviz.methods.atlas.site`: the adapters, keys and query sets of one site;
- :mod:`~clviz.methods.atlas.method`: the registered method and its two stages.
"""

from clviz.methods.atlas.method import AlphaRecord, Atlas, AtlasOptions
from clviz.methods.atlas.site import AtlasSite, attach_atlas, attention_pool, ortho_penalty

__all__ = [
    "AlphaRecord",
    "Atlas",
    "AtlasOptions",
    "AtlasSite",
    "attach_atlas",
    "attention_pool",
    "ortho_penalty",
]
