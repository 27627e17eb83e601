"""Soft-label distillation (Hinton et al.), the one copy LwF, ZSCL and MulKI share."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
