"""How far a checkpoint's features moved from the initial backbone's, in four numbers.

- **Linear CKA** (Kornblith et al., 2019) between a layer's probe features now and at the
  start: 1 means the same geometry up to rotation and scale; lower means the layer changed.
- **Class-centroid shift**: 1 - cos between each class's mean embedding now and at the start.
- **Modality gap** (Liang et al., 2022): the distance between the mean image embedding and the
  mean text embedding; CLIP keeps the two modalities in separate cones.
- **k-NN accuracy**: leave-one-out k-nearest-neighbour accuracy of the probe images within their
  own task, from the features alone (no text): how linearly useful the features still are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from clviz.analysis.drift.extract import FINAL, Snapshot
from clviz.errors import InputError


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two feature matrices over the same n examples (n x p, n x q)."""
    if x.shape[0] != y.shape[0]:
        raise InputError(f"CKA needs the same examples: {x.shape[0]} vs {y.shape[0]} rows")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).norm() ** 2
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


def _centroids(x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    x = F.normalize(x.double(), dim=-1)
    return torch.stack([x[groups == g].mean(0) for g in torch.unique(groups)])


def centroid_shift(x0: torch.Tensor, x: torch.Tensor, groups: torch.Tensor) -> float:
    """Mean over classes of 1 - cos(class centroid now, class centroid at the start)."""
    c0, c = _centroids(x0, groups), _centroids(x, groups)
    return float((1 - F.cosine_similarity(c0, c, dim=-1)).mean())


def modality_gap(image: torch.Tensor, text: torch.Tensor) -> float:
    """|| mean normalised image embedding - mean normalised text embedding ||."""
    gap = F.normalize(image.double(), dim=-1).mean(0) - F.normalize(text.double(), dim=-1).mean(0)
    return float(gap.norm())


def knn_accuracy(
    x: torch.Tensor, task_ids: torch.Tensor, labels: torch.Tensor, k: int = 5
) -> float:
    """Leave-one-out k-NN accuracy (percent, cosine, majority vote) within each task, averaged
    over tasks. Ties go to the class whose voters are closer."""
    x = F.normalize(x.double(), dim=-1)
    accs = []
    for t in torch.unique(task_ids):
        idx = torch.nonzero(task_ids == t).flatten()
        xs, ys = x[idx], labels[idx]
        sim = xs @ xs.T
        sim.fill_diagonal_(-torch.inf)
        top_sim, top = sim.topk(min(k, len(idx) - 1), dim=-1)
        votes = torch.zeros(len(idx), int(ys.max()) + 1, dtype=torch.float64)
        votes.scatter_add_(1, ys[top], 1 + 1e-3 * top_sim)
        accs.append(100.0 * (votes.argmax(-1) == ys).double().mean().item())
    return float(sum(accs) / len(accs))


def drift_curves(
    snapshots: Sequence[Snapshot], task_ids: torch.Tensor, labels: torch.Tensor, k: int = 5
) -> dict[str, Any]:
    """Every measure at every checkpoint (index 0 = the initial backbone).

    Returns ``{"cka": {layer: [...]}, "text_cka": {layer: [...]}, "knn": {layer: [...]},
    "centroid_shift": [...], "modality_gap": [...]}``; CKA and k-NN for every image layer
    (token 0 of each block and the final embedding), text CKA for every text layer.
    """
    first = snapshots[0]
    groups = task_ids * 10_000 + labels  # one id per (task, class)
    image_layers = [n for n in first.image if all(n in s.image for s in snapshots)]
    text_layers = [n for n in first.text if all(n in s.text for s in snapshots)]
    return {
        "cka": {
            n: [linear_cka(first.image[n], s.image[n]) for s in snapshots] for n in image_layers
        },
        "text_cka": {
            n: [linear_cka(first.text[n], s.text[n]) for s in snapshots] for n in text_layers
        },
        "knn": {
            n: [knn_accuracy(s.image[n], task_ids, labels, k) for s in snapshots]
            for n in image_layers
        },
        "centroid_shift": [
            centroid_shift(first.image[FINAL], s.image[FINAL], groups) for s in snapshots
        ],
        "modality_gap": [modality_gap(s.image[FINAL], s.text[FINAL]) for s in snapshots],
    }
