"""MulKI (our reading of Zhang et al., arXiv 2411.06764): multi-stage knowledge integration.

- :mod:`~clviz.methods.mulki.losses`: prototypes and their cross-modal contrastive loss,
  relation distributions, per-sample teacher weights;
- :mod:`~clviz.methods.mulki.method`: the registered method, its four stages and its record.
"""

from clviz.methods.mulki.losses import (
    class_means,
    feature_distillation,
    prototype_contrastive_loss,
    relation_distribution,
    relation_logits,
    teacher_weights,
    true_class_confidence,
)
from clviz.methods.mulki.method import (
    MulKI,
    MulKIOptions,
    MulKIRecord,
    MulKIState,
    MulKITaskRecord,
    TeacherWeightSummary,
)

__all__ = [
    "MulKI",
    "MulKIOptions",
    "MulKIRecord",
    "MulKIState",
    "MulKITaskRecord",
    "TeacherWeightSummary",
    "class_means",
    "feature_distillation",
    "prototype_contrastive_loss",
    "relation_distribution",
    "relation_logits",
    "teacher_weights",
    "true_class_confidence",
]
