"""ZSCL (Zheng et al., ICCV 2023): keep zero-shot transfer by distilling from the initial model.

As in the reference code (Thunderbeee/ZSCL, ``mtil/src/models/finetune.py``):

- **Distillation in feature space on reference data**: a frozen copy of the *initial*
  pretrained model embeds a reference text set once; on each step a batch of reference images
  is embedded by the teacher and the student, and the student's image-to-text logits over the
  reference texts are distilled towards the teacher's (``T = 2``), in both directions
  (image->text and text->image, the ``--image_loss --text_loss`` setting).
- **An L2 penalty** towards the weights at the start of the task (``--l2 1``).
- **Weight ensemble during training** (``--we``): every ``we_every`` steps the current weights
  are folded into a running average, and the task ends on that average.

The reference uses ImageNet images and Conceptual Captions as reference data; here the
reference images and captions are drawn from the embedded world's pretraining corpus with their
own seed, so they are never the task's data. Step counts are scaled to the embedded stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clviz.methods.base import Method, register_method
from clviz.methods.distillation import distillation_loss
from clviz.world.corpus import make_corpus
from clviz.world.tasks import Task
from clviz.zeroshot import embed_images

REFERENCE_SEED = 7919  # the reference set is drawn apart from the pretraining corpus (seed 0)


@dataclass
class ZSCLOptions:
    reference_images: int = 1024
    reference_texts: int = 256
    reference_batch: int = 32  # half the task batch: keeps the step under the 3-minute budget
    temperature: float = 2.0
    image_loss: float = 1.0  # weight of image->text distillation
    text_loss: float = 1.0  # weight of text->image distillation
    l2: float = 1.0  # weight of the L2 penalty towards the weights at the start of the task
    we_every: int = 10  # weight-ensemble period in steps; 0 disables the ensemble


@register_method
class ZSCL(Method):
    name = "zscl"
    summary = "distil the initial model on reference data, L2 to the task start, weight ensemble"
    Options = ZSCLOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self._initial = self.snapshot()
        images, captions = make_corpus(
            max(o.reference_images, o.reference_texts), REFERENCE_SEED, progress=False
        )
        self._ref_images = images[: o.reference_images]
        unique = list(dict.fromkeys(captions))[: o.reference_texts]
        with torch.no_grad():
            tokens = self.tokenizer(unique).to(next(self.model.parameters()).device)
            self._ref_text = torch.nn.functional.normalize(
                self._initial.encode_text(tokens), dim=-1
            )

    def begin_task(self, task: Task, index: int) -> None:
        self._start = [p.detach().clone() for p in self.trainable_parameters()]
        self._ensemble = [p.detach().clone() for p in self.trainable_parameters()]
        self._ensembled = 0
        self._ref_generator = torch.Generator().manual_seed(REFERENCE_SEED + index)

    def loss(self, images: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
        o = self.options
        loss = self.task_loss(self.encode_images(images), labels, task)
        idx = torch.randint(
            len(self._ref_images), (o.reference_batch,), generator=self._ref_generator
        )
        ref = self._ref_images[idx]
        scale = self.model.logit_scale.exp().detach()
        with torch.no_grad():
            teacher = scale * embed_images(self._initial, ref) @ self._ref_text.T
        student = scale * self.encode_images(ref) @ self._ref_text.T
        if o.image_loss:
            loss = loss + o.image_loss * distillation_loss(teacher, student, o.temperature)
        if o.text_loss:
            loss = loss + o.text_loss * distillation_loss(teacher.T, student.T, o.temperature)
        if o.l2:
            params = self.trainable_parameters()
            loss = loss + o.l2 * sum(
                ((p - s) ** 2).sum() for p, s in zip(params, self._start, strict=True)
            )
        return loss

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        every = self.options.we_every
        if every and step % every == 0:
            self._ensembled += 1
            w = 1.0 / self._ensembled
            for avg, p in zip(self._ensemble, self.trainable_parameters(), strict=True):
                avg.mul_(1 - w).add_(p.detach(), alpha=w)

    @torch.no_grad()
    def end_task(self, task: Task, index: int) -> None:
        if self.options.we_every and self._ensembled:
            for p, avg in zip(self.trainable_parameters(), self._ensemble, strict=True):
                p.copy_(avg)
        del self._start, self._ensemble
