"""The losses of MulKI's first three stages, as pure functions of embeddings.

Every formula here beyond "prototypes initialised as class means, aligned with the class texts
by a symmetric cross-modal contrastive loss; intra- and inter-modal relation distributions
distilled from two teachers; per-sample re-weighting of the teachers" is **our reading**: the
paper's full text was not available to us. Each choice is named in its docstring. The relation
distillation itself is the suite's one soft cross-entropy (:mod:`clviz.methods.distill`), kept
per sample so that stage 3 can weight each sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clviz.errors import InputError


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Normalised per-class means (C x D) of normalised ``features`` (N x D).

    A class without any sample is an error: its prototype would be undefined.
    """
    labels = labels.to(features.device)
    counts = torch.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise InputError(
            f"classes {missing} have no sample; a prototype needs at least one image per class"
        )
    sums = torch.zeros(
        num_classes, features.shape[-1], dtype=features.dtype, device=features.device
    )
    sums.index_add_(0, labels, features)
    return F.normalize(sums / counts[:, None].to(features.dtype), dim=-1)


def prototype_contrastive_loss(
    prototypes: torch.Tensor, text: torch.Tensor, scale: float | torch.Tensor
) -> torch.Tensor:
    """Stage 1: symmetric InfoNCE between C visual prototypes and the C class text embeddings.

    Prototype c and text c are the positive pair, the other classes the negatives, in both
    directions (prototype->text and text->prototype), as CLIP's own loss over a batch. Our
    reading: the temperature is the model's (frozen) logit scale.
    """
    logits = scale * F.normalize(prototypes, dim=-1) @ F.normalize(text, dim=-1).T
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def relation_distribution(
    features: torch.Tensor, anchors: torch.Tensor, scale: float | torch.Tensor, temperature: float
) -> torch.Tensor:
    """Each sample's similarity distribution over ``anchors`` (prototypes or class texts):
    ``softmax(scale * cos / temperature)``, one row per sample, summing to 1."""
    return F.softmax(relation_logits(features, anchors, scale) / temperature, dim=-1)


def relation_logits(
    features: torch.Tensor, anchors: torch.Tensor, scale: float | torch.Tensor
) -> torch.Tensor:
    """``scale * cos(feature, anchor)`` for every (sample, anchor) pair."""
    return scale * features @ F.normalize(anchors, dim=-1).T


def feature_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Stage 2, per sample: ``1 - cos(student, teacher)`` of the image embeddings (our reading: a
    cosine distance, bounded and scale-free, rather than an L2 on unnormalised features)."""
    return 1.0 - F.cosine_similarity(student, teacher, dim=-1)


def true_class_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A teacher's softmax probability of each sample's true class (stage 3's evidence)."""
    return F.softmax(logits, dim=-1).gather(1, labels.to(logits.device)[:, None]).squeeze(1)


def teacher_weights(confidences: torch.Tensor, sharpness: float = 1.0) -> torch.Tensor:
    """Stage 3: per-sample weights of K teachers from their true-class confidences (N x K).

    Our reading: ``w_k ∝ (c_k + eps) ** sharpness``, normalised over teachers, so every row lies
    in [0, 1] and sums to 1; the teacher that classifies the sample better is trusted more.
    ``sharpness = 0`` gives equal weights (stage 3 switched off); larger values approach a hard
    choice of the more confident teacher.
    """
    if confidences.ndim != 2:
        raise InputError(f"confidences must be N x K (samples x teachers), got {confidences.shape}")
    if sharpness < 0:
        raise InputError(f"sharpness must be >= 0, got {sharpness}")
    logw = sharpness * torch.log(confidences.clamp_min(0) + 1e-6)
    return F.softmax(logw, dim=-1)
