"""Per-layer features of a CLIP, captured with :mod:`clviz.hooks`, and what they can tell.

``block_features`` returns token 0 (the class token on the image side, the first token on the
text side) after every residual block of one tower: the representation that MoE-Adapters'
routers read, and the one whose drift the analysis notebooks follow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clviz.core.clip import encode_images
from clviz.hooks import clip_block_names, trace_batches


@torch.no_grad()
def block_features(
    model: nn.Module, images: torch.Tensor, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Token 0 after each image-tower block for uint8 ``images``: {block name: N x width}."""
    names = clip_block_names(model)["image"]
    batches = trace_batches(
        model, names, images, lambda x: encode_images(model, x), batch_size, stop=True
    )
    chunks: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for _, trace in batches:
        for n in names:
            chunks[n].append(trace[n][:, 0].cpu())
    return {n: torch.cat(c) for n, c in chunks.items()}


def nearest_centroid_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> float:
    """Accuracy (percent) of classifying ``test_x`` by the closest class mean (cosine)."""
    classes = torch.unique(train_y)
    centroids = torch.stack([F.normalize(train_x[train_y == c], dim=-1).mean(0) for c in classes])
    pred = classes[(F.normalize(test_x, dim=-1) @ F.normalize(centroids, dim=-1).T).argmax(-1)]
    return 100.0 * (pred == test_y).float().mean().item()
