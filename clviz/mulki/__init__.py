"""MulKI's building blocks (our reading of Zhang et al., arXiv 2411.06764): prototypes and their
cross-modal contrastive loss, relation distillation, per-sample teacher weights, weight-space
integration. The method that assembles them is ``clviz.methods.mulki``."""

from clviz.mulki.losses import (
    class_means,
    feature_distillation,
    modality_gap,
    prototype_contrastive_loss,
    relation_distillation,
    relation_distribution,
    teacher_weights,
    true_class_confidence,
)
from clviz.mulki.weights import WeightAverage, interpolate_

__all__ = [
    "WeightAverage",
    "class_means",
    "feature_distillation",
    "interpolate_",
    "modality_gap",
    "prototype_contrastive_loss",
    "relation_distillation",
    "relation_distribution",
    "teacher_weights",
    "true_class_confidence",
]
