"""MulKI (Zhang et al., arXiv 2411.06764): multi-stage knowledge integration, two teachers, no
reference data. **Our reading**: no reference code is public and the paper's full text was not
available to us, so beyond the facts below every formula is our choice, named here and
switchable through :class:`MulKIOptions`. Per-task state lives in :class:`MulKIState`; what the
figures need is the typed :class:`MulKIRecord`.

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

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clviz.analysis.drift.measures import modality_gap
from clviz.core.clip import class_embeddings, embed_images, image_features
from clviz.core.formats import Batch, ClassificationFormat, TaskFormat, logit_scale
from clviz.core.method import Method, Stage, TaskState
from clviz.core.result import MethodRecord, register_record
from clviz.core.validation import NON_NEGATIVE, POSITIVE, PROBABILITY, Range, bounded
from clviz.errors import InputError
from clviz.methods.distill import soft_cross_entropy
from clviz.methods.mulki.losses import (
    class_means,
    feature_distillation,
    prototype_contrastive_loss,
    relation_logits,
    teacher_weights,
    true_class_confidence,
)
from clviz.methods.registry import register_method
from clviz.methods.row_cache import RowCache
from clviz.methods.weights import WeightAverage, interpolate_, state_copy

WEIGHT_BINS = 10  # histogram bins of the initial teacher's weight over [0, 1]
PROTOTYPE_UPDATES = ("gradient", "momentum")


@dataclass
class MulKIOptions:
    """Stage switches and weights; every default is our reading (see the module docstring)."""

    elicit: bool = True  # stage 1: learn prototypes, align them with the class texts
    add: bool = True  # stage 2: distil features and relations from the two teachers
    distinguish: bool = True  # stage 3: per-sample teacher weights (off: 1/2 each)
    connect: bool = True  # stage 4: weight averaging within and interpolation across tasks
    # weight of the prototype-text contrastive loss
    prototype_weight: float = bounded(1.0, NON_NEGATIVE)
    prototype_update: str = "gradient"  # "gradient" or "momentum"
    # gradient mode: prototypes learn this much faster
    prototype_lr_scale: float = bounded(10.0, POSITIVE)
    # momentum mode: P <- m P + (1 - m) batch class mean
    prototype_momentum: float = bounded(0.9, Range(0, 1, high_open=True))
    # stage 2: 1 - cos(student, teacher) image features
    feature_weight: float = bounded(1.0, NON_NEGATIVE)
    intra_weight: float = bounded(1.0, NON_NEGATIVE)  # stage 2: image-to-prototype relations
    inter_weight: float = bounded(1.0, NON_NEGATIVE)  # stage 2: image-to-text relations
    temperature: float = bounded(2.0, POSITIVE)  # of the relation distillation
    # stage 3: w_k proportional to confidence ** sharpness
    sharpness: float = bounded(1.0, NON_NEGATIVE)
    # stage 4: weight-average period in steps (0: no averaging)
    we_every: int = bounded(10, NON_NEGATIVE, count=True)
    # stage 4: weight of the new task's model in the interpolation
    alpha: float = bounded(0.5, PROBABILITY)

    def __post_init__(self) -> None:
        if self.prototype_update not in PROTOTYPE_UPDATES:
            raise InputError(
                f"prototype_update must be one of {PROTOTYPE_UPDATES}, "
                f"got {self.prototype_update!r}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.prototype_momentum < 1.0:
            raise InputError(f"prototype_momentum must be in [0, 1), got {self.prototype_momentum}")
        if self.temperature <= 0 or self.prototype_lr_scale <= 0:
            raise InputError("temperature and prototype_lr_scale must be positive")
        if self.sharpness < 0 or self.we_every < 0:
            raise InputError("sharpness and we_every must be >= 0")


@dataclass
class TeacherWeightSummary:
    """The pretrained teacher's per-sample weight over a task: histogram over [0, 1] in
    ``WEIGHT_BINS`` bins, mean and the 10/25/50/75/90 % quantiles (empty when no step ran)."""

    count: int = 0
    mean: float | None = None
    quantiles: list[float] = field(default_factory=list)
    histogram: list[int] = field(default_factory=list)


@dataclass
class MulKITaskRecord:
    """One task: prototype-to-text and class-mean-to-text cosines and the modality gap, before
    and after training, and the teachers' weights."""

    task: str
    index: int
    prototype_text_before: float
    class_mean_text_before: float
    modality_gap_before: float
    prototype_text_after: float | None = None  # None until the task has been trained
    class_mean_text_after: float | None = None
    modality_gap_after: float | None = None
    teacher_weights: TeacherWeightSummary = field(default_factory=TeacherWeightSummary)


@register_record
@dataclass
class MulKIRecord(MethodRecord):
    kind = "mulki"
    weight_bins: int
    tasks: list[MulKITaskRecord]


@dataclass
class MulKIState(TaskState):
    """The two teachers and their class embeddings, the task's prototypes, the running weight
    average, and the per-sample teacher weights seen so far."""

    before: dict[str, torch.Tensor]  # the weights at the start of the task (stage 4)
    prototypes_param: nn.Parameter  # stored P / s in gradient mode, so Adam moves P s x faster
    prototype_scale: float
    teachers: list[nn.Module]  # [pretrained] + [previous task's model] from the second task
    teacher_text: list[torch.Tensor]
    teacher_images: list[RowCache]  # each teacher's embedding of each image, once per task
    average: WeightAverage | None
    record: MulKITaskRecord
    weights: list[torch.Tensor] = field(default_factory=list)  # pretrained teacher, per step
    momentum_target: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def prototypes(self) -> torch.Tensor:
        """The task's visual prototypes (C x D, not normalised)."""
        return self.prototypes_param * self.prototype_scale


@register_method
class MulKI(Method):
    name = "mulki"
    listing_order = 7
    formats = (ClassificationFormat,)
    relative_cost = 1.1
    summary = "prototypes aligned with text, two-teacher relation distillation, weight averaging"
    Options = MulKIOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initial = self.snapshot()  # the pretrained teacher, frozen
        self.records: list[MulKITaskRecord] = []

    # ------------------------------------------------------------------ task set-up
    def begin_task(self, task: TaskFormat, index: int, draws: torch.Generator) -> MulKIState:
        o = self.options
        before = state_copy(self.model.state_dict())
        previous = self.snapshot() if index > 0 else None
        initial_feats = image_features(self.initial, task.images("train"))
        means = class_means(initial_feats, task.train_labels, task.num_classes)
        learn = o.elicit and o.prototype_update == "gradient"
        scale = o.prototype_lr_scale if learn else 1.0
        stored = means / o.prototype_lr_scale if learn else means.clone()
        teachers = [self.initial] + ([previous] if previous is not None else [])
        with torch.no_grad():
            teacher_text = [
                class_embeddings(t, task.prompt_tokens, task.num_classes) for t in teachers
            ]
        before_alignment = self._alignment(task, means)
        return MulKIState(
            task,
            index,
            draws,
            before=before,
            prototypes_param=nn.Parameter(stored, requires_grad=learn),
            prototype_scale=scale,
            teachers=teachers,
            teacher_text=teacher_text,
            teacher_images=[RowCache(functools.partial(embed_images, t)) for t in teachers],
            average=WeightAverage(self.model_parameters()) if o.connect else None,
            record=MulKITaskRecord(task.name, index, *before_alignment),
        )

    def stages(self, state: MulKIState) -> Iterator[Stage]:
        params = self.model_parameters()
        if state.prototypes_param.requires_grad:
            params = [*params, state.prototypes_param]
        yield Stage(params, self.rate(state.task), self.train_config.steps_for(state.index))

    # ------------------------------------------------------------------ the objective
    def loss(self, batch: Batch, state: MulKIState) -> torch.Tensor:
        o, task = self.options, state.task
        image = embed_images(self.model, batch.images)
        text = task.text_side(self.model)
        scale = logit_scale(self.model)
        labels = batch.labels.to(image.device)
        loss = self.classification_loss(image, text, labels)
        prototypes = state.prototypes
        if o.elicit:
            loss = loss + o.prototype_weight * prototype_contrastive_loss(prototypes, text, scale)
            if o.prototype_update == "momentum":
                state.momentum_target = self._batch_means(image.detach(), labels, task.num_classes)
        if o.add:
            loss = loss + self._distillation(batch, state, image, text, prototypes, labels, scale)
        return loss

    def _distillation(self, batch, state, image, text, prototypes, labels, scale) -> torch.Tensor:
        """Stages 2 and 3: each teacher's per-sample losses, weighted per sample."""
        o = self.options
        student_intra = relation_logits(image, prototypes, scale)
        student_inter = relation_logits(image, text, scale)
        anchors = prototypes.detach()
        losses, confidences = [], []
        for teacher, teacher_text in zip(state.teacher_images, state.teacher_text, strict=True):
            with torch.no_grad():
                feats = teacher.batch(state.task.name, batch)  # keyed by the batch's positions
                inter = relation_logits(feats, teacher_text, scale)
                intra = relation_logits(feats, anchors, scale)
            per_sample = torch.zeros_like(labels, dtype=image.dtype)
            if o.feature_weight:
                per_sample = per_sample + o.feature_weight * feature_distillation(image, feats)
            if o.intra_weight:
                per_sample = per_sample + o.intra_weight * soft_cross_entropy(
                    intra, student_intra, o.temperature
                )
            if o.inter_weight:
                per_sample = per_sample + o.inter_weight * soft_cross_entropy(
                    inter, student_inter, o.temperature
                )
            losses.append(per_sample)
            confidences.append(true_class_confidence(inter, labels))
        if len(losses) == 1:  # first task: both teachers are the pretrained model
            losses, confidences = losses * 2, confidences * 2
        weights = teacher_weights(
            torch.stack(confidences, dim=1), o.sharpness if o.distinguish else 0.0
        )
        state.weights.append(weights[:, 0].detach().cpu())
        return (weights * torch.stack(losses, dim=1)).sum(dim=1).mean()

    @staticmethod
    def _batch_means(image: torch.Tensor, labels: torch.Tensor, num_classes: int):
        """Class sums of a batch, and which classes it holds (momentum prototype update)."""
        present = torch.bincount(labels, minlength=num_classes) > 0
        sums = torch.zeros(num_classes, image.shape[-1], dtype=image.dtype, device=image.device)
        sums.index_add_(0, labels, image)
        return sums, present

    @torch.no_grad()
    def after_step(self, state: MulKIState, step: int) -> None:
        o = self.options
        if state.momentum_target is not None:
            sums, present = state.momentum_target
            target = F.normalize(sums[present], dim=-1)
            p = state.prototypes_param.data
            p[present] = F.normalize(
                o.prototype_momentum * p[present] + (1 - o.prototype_momentum) * target, dim=-1
            )
            state.momentum_target = None
        if state.average is not None and o.we_every and step % o.we_every == 0:
            state.average.fold(self.model_parameters())

    # ------------------------------------------------------------------ end of a task
    @torch.no_grad()
    def end_task(self, state: MulKIState) -> None:
        o = self.options
        if o.connect:
            state.average.copy_to(self.model_parameters())
            interpolate_(self.model.state_dict(), state.before, o.alpha)
        record = state.record
        after = self._alignment(state.task, state.prototypes.detach())
        record.prototype_text_after, record.class_mean_text_after = after[:2]
        record.modality_gap_after = after[2]
        record.teacher_weights = self._weight_summary(state.weights)
        self.records.append(record)

    @torch.no_grad()
    def _alignment(
        self, task: ClassificationFormat, prototypes: torch.Tensor
    ) -> tuple[float, float, float]:
        """(prototype-to-text cosine of matching classes, class-mean-to-text cosine, modality
        gap) of the model now."""
        self.model.eval()
        text = class_embeddings(self.model, task.prompt_tokens, task.num_classes)
        feats = image_features(self.model, task.images("train"))
        means = class_means(feats, task.train_labels, task.num_classes)
        protos = F.normalize(prototypes, dim=-1)
        return (
            (protos * text).sum(-1).mean().item(),
            (means * text).sum(-1).mean().item(),
            modality_gap(feats, text),
        )

    @staticmethod
    def _weight_summary(weights: list[torch.Tensor]) -> TeacherWeightSummary:
        """The pretrained teacher's per-sample weights over the task."""
        if not weights:
            return TeacherWeightSummary()
        w = torch.cat(weights).float().numpy()
        counts, _ = np.histogram(w, bins=WEIGHT_BINS, range=(0.0, 1.0))
        return TeacherWeightSummary(
            count=len(w),
            mean=float(w.mean()),
            quantiles=[float(q) for q in np.quantile(w, [0.1, 0.25, 0.5, 0.75, 0.9])],
            histogram=[int(c) for c in counts],
        )

    # ------------------------------------------------------------------ results, checkpoints
    def record(self, tasks: Sequence[TaskFormat] = ()) -> MulKIRecord:
        return MulKIRecord(WEIGHT_BINS, list(self.records))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "records": [r for r in self.records]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.records = list(state["records"])
