"""Soft-label distillation (Hinton et al.), the one copy LwF, ZSCL and MulKI share, and ZSCL's
image-text distillation on reference data, which LwF (as ZSCL runs it) shares too."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from clviz.core.clip import embed_images
from clviz.core.formats import logit_scale


def soft_cross_entropy(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Per sample: cross-entropy of the student's tempered softmax against the teacher's,
    scaled by ``T**2`` so that its gradient does not shrink with the temperature."""
    t = F.softmax(teacher_logits / temperature, dim=-1)
    s = F.log_softmax(student_logits / temperature, dim=-1)
    return -(t * s).sum(dim=-1) * temperature**2


def distillation_loss(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """:func:`soft_cross_entropy` averaged over the batch."""
    return soft_cross_entropy(teacher_logits, student_logits, temperature).mean()


def add_image_text_distillation(
    loss: torch.Tensor,
    student: nn.Module,
    teacher: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    texts: torch.Tensor,
    temperature: float,
    image_weight: float = 1.0,
    text_weight: float = 1.0,
) -> torch.Tensor:
    """``loss`` plus ZSCL's distillation (``mtil/src/models/finetune.py``), the terms added in
    the reference's order: the student's and the teacher's
    embeddings of ``images`` against fixed text embeddings ``texts`` (N x D), both scaled by
    the student's logit scale; the student's logits are pulled towards the teacher's over the
    texts (image -> text, ``image_weight``) and over the images (text -> image, the transposed
    logits, ``text_weight``). Only the student's image tower gets a gradient. ``teacher`` maps
    images to the teacher's normalised embeddings (a :class:`~clviz.methods.row_cache.RowCache`
    of a frozen model bound to the images' positions, so it embeds each image once)."""
    scale = logit_scale(student)
    with torch.no_grad():
        target = scale * teacher(images) @ texts.T
    logits = scale * embed_images(student, images) @ texts.T
    if image_weight:
        loss = loss + image_weight * distillation_loss(target, logits, temperature)
    if text_weight:
        loss = loss + text_weight * distillation_loss(target.T, logits.T, temperature)
    return loss
