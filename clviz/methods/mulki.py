"""MulKI (Zhang et al., arXiv 2411.06764): multi-stage knowledge integration, two teachers, no
reference data. **Our reading**: no reference code is public and the paper's full text was not
available to us, so beyond the facts below every formula is our choice, named here and
switchable through :class:`MulKIOptions`.

Facts: the student trains on the current task's data only; two frozen teachers, the pretrained
model and the model after the previous task; four stages after Knowledge Integration Theory.

1. **Eliciting ideas.** One visual prototype per class, initialised as the class mean of the
   *initial* model's image features over the task's training set, aligned with the class text
   embeddings by a symmetric cross-modal contrastive loss. Our reading: the prototypes are
   trained by gradient (with an effective learning rate ``prototype_lr_scale`` times the
   model's) or, with ``prototype_update="momentum"``, moved towards the student's batch class
   means; the contrastive temperature is the model's logit scale. Switched off, the prototypes
   stay at their initial class means and there is no contrastive loss.
2. **Adding new ideas.** From each teacher, per sample: feature distillation ``1 - cos`` of the
   image embeddings; intra-modal relations, the image-to-prototype similarity distribution
   (our reading: teachers and student measured against the same prototypes, detached for the
   teachers); inter-modal relations, the image-to-class-text similarity distribution over the
   current task's classes (each model with its own text tower). Relations are distilled with
   tempered soft labels (``T = 2``, as LwF and ZSCL here).
3. **Distinguishing ideas.** Per-sample weights of the two teachers' stage-2 losses, from each
   teacher's softmax confidence on the true class: ``w_k ∝ c_k ** sharpness`` (our reading);
   the weights sum to 1 per sample, so switching the stage off gives 1/2 each.
4. **Making connections.** Within a task, a running average of the student's weights every
   ``we_every`` steps, and the task ends on it (as ZSCL's weight ensemble); across tasks, the
   averaged weights are interpolated with the previous task's model,
   ``theta <- (1 - alpha) theta_prev + alpha theta`` (as WiSE-FT; our reading: ``alpha = 0.5``).

On the first task both teachers are the pretrained model, so the previous-task teacher is not
run twice and its weights are 1/2 by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clviz.methods.base import Method, register_method
from clviz.mulki import (
    WeightAverage,
    class_means,
    feature_distillation,
    interpolate_,
    modality_gap,
    prototype_contrastive_loss,
    relation_distillation,
    teacher_weights,
    true_class_confidence,
)
from clviz.mulki.losses import relation_logits
from clviz.world.tasks import Task
from clviz.zeroshot import class_embeddings, class_text_features, embed_images, image_features

WEIGHT_BINS = 10  # histogram bins of the initial teacher's weight over [0, 1]
PROTOTYPE_UPDATES = ("gradient", "momentum")


@dataclass
class MulKIOptions:
    """Stage switches and weights; every default is our reading (see the module docstring)."""

    elicit: bool = True  # stage 1: learn prototypes, align them with the class texts
    add: bool = True  # stage 2: distil features and relations from the two teachers
    distinguish: bool = True  # stage 3: per-sample teacher weights (off: 1/2 each)
    connect: bool = True  # stage 4: weight averaging within and interpolation across tasks
    prototype_weight: float = 1.0  # weight of the prototype-text contrastive loss
    prototype_update: str = "gradient"  # "gradient" or "momentum"
    prototype_lr_scale: float = 10.0  # gradient mode: prototypes learn this much faster
    prototype_momentum: float = 0.9  # momentum mode: P <- m P + (1 - m) batch class mean
    feature_weight: float = 1.0  # stage 2: 1 - cos(student, teacher) image features
    intra_weight: float = 1.0  # stage 2: image-to-prototype relations
    inter_weight: float = 1.0  # stage 2: image-to-text relations
    temperature: float = 2.0  # of the relation distillation
    sharpness: float = 1.0  # stage 3: w_k proportional to confidence ** sharpness
    we_every: int = 10  # stage 4: weight-average period in steps (0: no averaging)
    alpha: float = 0.5  # stage 4: weight of the new task's model in the interpolation

    def __post_init__(self) -> None:
        if self.prototype_update not in PROTOTYPE_UPDATES:
            raise ValueError(
                f"prototype_update must be one of {PROTOTYPE_UPDATES}, "
                f"got {self.prototype_update!r}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.prototype_momentum < 1.0:
            raise ValueError(f"prototype_momentum must be in [0, 1), got {self.prototype_momentum}")
        if self.temperature <= 0 or self.prototype_lr_scale <= 0:
            raise ValueError("temperature and prototype_lr_scale must be positive")
        if self.sharpness < 0 or self.we_every < 0:
            raise ValueError("sharpness and we_every must be >= 0")


@register_method
class MulKI(Method):
    name = "mulki"
    summary = "prototypes aligned with text, two-teacher relation distillation, weight averaging"
    Options = MulKIOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._initial = self.snapshot()
        self._previous: nn.Module | None = None
        self._prototypes: nn.Parameter | None = None
        self._records: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ task set-up
    def model_parameters(self) -> list[nn.Parameter]:
        """The student's weights (what stage 4 averages and interpolates)."""
        return super().trainable_parameters()

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = self.model_parameters()
        if self._prototypes is not None and self._prototypes.requires_grad:
            params = [*params, self._prototypes]
        return params

    @property
    def prototypes(self) -> torch.Tensor:
        """The current task's visual prototypes (C x D, not normalised)."""
        if self._prototypes is None:
            raise RuntimeError("prototypes exist only between begin_task and end_task")
        scale = self.options.prototype_lr_scale if self._prototypes.requires_grad else 1.0
        return self._prototypes * scale

    def begin_task(self, task: Task, index: int) -> None:
        o = self.options
        self._before = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._previous = self.snapshot() if index > 0 else None
        initial_feats = image_features(self._initial, task.train_images)
        means = class_means(initial_feats, task.train_labels, task.num_classes)
        learn = o.elicit and o.prototype_update == "gradient"
        # gradient mode stores P / s so that Adam's steps move P s times faster
        stored = means / o.prototype_lr_scale if learn else means.clone()
        self._prototypes = nn.Parameter(stored, requires_grad=learn)
        self._proto_update: tuple[torch.Tensor, torch.Tensor] | None = None
        tokens = self.tokenizer([p for c in range(task.num_classes) for p in task.prompts(c)])
        self._teachers = [self._initial] + ([self._previous] if self._previous is not None else [])
        with torch.no_grad():
            self._teacher_text = [
                class_embeddings(t, tokens, task.num_classes) for t in self._teachers
            ]
        self._average = WeightAverage(self.model_parameters()) if o.connect else None
        self._weights: list[torch.Tensor] = []
        record = {"task": task.name, "index": index}
        record.update(self._alignment(task, "before", means))
        self._pending = record

    # ------------------------------------------------------------------ the objective
    def loss(self, images: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
        o = self.options
        image = self.encode_images(images)
        text = class_embeddings(self.model, self._tokens, task.num_classes)
        scale = self.model.logit_scale.exp().detach()
        labels = labels.to(image.device)
        loss = F.cross_entropy(
            scale * image @ text.T, labels, label_smoothing=self.train_cfg.label_smoothing
        )
        prototypes = self.prototypes
        if o.elicit:
            loss = loss + o.prototype_weight * prototype_contrastive_loss(prototypes, text, scale)
            if o.prototype_update == "momentum":
                self._proto_update = self._batch_means(image.detach(), labels, task.num_classes)
        if o.add:
            loss = loss + self._distillation(images, image, text, prototypes, labels, scale)
        return loss

    def _distillation(self, images, image, text, prototypes, labels, scale) -> torch.Tensor:
        """Stages 2 and 3: each teacher's per-sample losses, weighted per sample."""
        o = self.options
        student_intra = relation_logits(image, prototypes, scale)
        student_inter = relation_logits(image, text, scale)
        anchors = prototypes.detach()
        losses, confidences = [], []
        for teacher, teacher_text in zip(self._teachers, self._teacher_text, strict=True):
            with torch.no_grad():
                feats = embed_images(teacher, images)
                inter = relation_logits(feats, teacher_text, scale)
                intra = relation_logits(feats, anchors, scale)
            per_sample = torch.zeros_like(labels, dtype=image.dtype)
            if o.feature_weight:
                per_sample = per_sample + o.feature_weight * feature_distillation(image, feats)
            if o.intra_weight:
                per_sample = per_sample + o.intra_weight * relation_distillation(
                    intra, student_intra, o.temperature
                )
            if o.inter_weight:
                per_sample = per_sample + o.inter_weight * relation_distillation(
                    inter, student_inter, o.temperature
                )
            losses.append(per_sample)
            confidences.append(true_class_confidence(inter, labels))
        if len(losses) == 1:  # first task: both teachers are the pretrained model
            losses, confidences = losses * 2, confidences * 2
        weights = teacher_weights(
            torch.stack(confidences, dim=1), o.sharpness if o.distinguish else 0.0
        )
        self._weights.append(weights[:, 0].detach().cpu())
        return (weights * torch.stack(losses, dim=1)).sum(dim=1).mean()

    @staticmethod
    def _batch_means(image: torch.Tensor, labels: torch.Tensor, num_classes: int):
        """Class means of a batch, and which classes it holds (momentum prototype update)."""
        present = torch.bincount(labels, minlength=num_classes) > 0
        sums = torch.zeros(num_classes, image.shape[-1], dtype=image.dtype, device=image.device)
        sums.index_add_(0, labels, image)
        return sums, present

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        o = self.options
        if self._proto_update is not None:
            sums, present = self._proto_update
            target = F.normalize(sums[present], dim=-1)
            p = self._prototypes.data
            p[present] = F.normalize(
                o.prototype_momentum * p[present] + (1 - o.prototype_momentum) * target, dim=-1
            )
            self._proto_update = None
        if self._average is not None and o.we_every and step % o.we_every == 0:
            self._average.fold(self.model_parameters())

    # ------------------------------------------------------------------ end of a task
    @torch.no_grad()
    def end_task(self, task: Task, index: int) -> None:
        o = self.options
        if o.connect:
            self._average.copy_to(self.model_parameters())
            interpolate_(self.model.state_dict(), self._before, o.alpha)
        record = self._pending
        record.update(self._alignment(task, "after", self.prototypes.detach()))
        record["teacher_weights"] = self._weight_summary()
        self._records.append(record)
        self._previous = self._teachers = self._teacher_text = None
        self._prototypes = self._average = None
        del self._before, self._weights, self._pending

    def _alignment(self, task: Task, when: str, prototypes: torch.Tensor) -> dict[str, float]:
        """Prototype-to-text cosine of matching classes, and the modality gap, of the model now."""
        self.model.eval()
        text = class_text_features(self.model, self.tokenizer, task)
        feats = image_features(self.model, task.train_images)
        means = class_means(feats, task.train_labels, task.num_classes)
        protos = F.normalize(prototypes, dim=-1)
        return {
            f"prototype_text_{when}": (protos * text).sum(-1).mean().item(),
            f"class_mean_text_{when}": (means * text).sum(-1).mean().item(),
            f"modality_gap_{when}": modality_gap(feats, text),
        }

    def _weight_summary(self) -> dict[str, Any]:
        """The initial teacher's per-sample weights over the task: histogram and quantiles."""
        if not self._weights:
            return {"count": 0}
        w = torch.cat(self._weights).numpy()
        counts, _ = np.histogram(w, bins=WEIGHT_BINS, range=(0.0, 1.0))
        return {
            "count": len(w),
            "mean": float(w.mean()),
            "quantiles": [float(q) for q in np.quantile(w, [0.1, 0.25, 0.5, 0.75, 0.9])],
            "histogram": [int(c) for c in counts],
        }

    # ------------------------------------------------------------------ results, checkpoints
    def record(self, tasks: list[Task]) -> dict[str, Any]:
        return {"weight_bins": WEIGHT_BINS, "tasks": [dict(r) for r in self._records]}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "mulki_records": [dict(r) for r in self._records]}

    def load_state_dict(self, state: dict[str, Any], tasks: dict[str, Task]) -> None:
        super().load_state_dict(state, tasks)
        self._records = [dict(r) for r in state.get("mulki_records", [])]
