"""Soft-label distillation, shared by LwF, ZSCL and MulKI."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Cross-entropy of the student's tempered softmax against the teacher's (Hinton et al.),
    scaled by ``T**2`` so that its gradient does not shrink with the temperature."""
    t = F.softmax(teacher_logits / temperature, dim=-1)
    s = F.log_softmax(student_logits / temperature, dim=-1)
    return -(t * s).sum(dim=-1).mean() * temperature**2
