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

The reference uses ImageNet images and Conceptual Captions as reference data
(``--ref-dataset ImageNet --ref-sentences conceptual_captions``). ``reference_folder`` (an image
folder in ImageNet's layout) and ``caption_file`` (one caption per line, or Conceptual Captions'
``.tsv``) give clviz the same (:mod:`clviz.data.reference`). Without them the reference images
and captions are drawn from the embedded world's pretraining corpus with their own seed, so they
are never the task's data: right for the embedded world, a toy stand-in on the real benchmark
(32 px drawings, upsampled), so the ``mtil`` profile refuses to run ZSCL on it unless
``allow_embedded_reference`` is set. Step counts are scaled to the embedded stream.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clviz.backbone import image_normalization
from clviz.core.clip import embed_images
from clviz.core.formats import Batch, TaskFormat
from clviz.data.reference import image_folder, read_captions
from clviz.methods.base import Method, TaskState, classification_only, register_method
from clviz.methods.distill import add_image_text_distillation
from clviz.methods.feature_cache import ImageCache
from clviz.methods.weights import WeightAverage
from clviz.world.corpus import make_corpus

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
    reference_folder: str | None = None  # reference images: a folder in ImageNet's layout
    caption_file: str | None = None  # reference texts: one caption per line (or CC's .tsv)
    allow_embedded_reference: bool = True  # without the two above: the embedded corpus

    def __post_init__(self) -> None:  # checked when the options are made: before any work
        embedded = self.reference_folder is None or self.caption_file is None
        if embedded and not self.allow_embedded_reference:
            raise ValueError(
                "ZSCL on the real benchmark distils on reference data (ImageNet images and "
                'Conceptual Captions in the reference): pass --options \'{"reference_folder": '
                '"/path/to/imagenet/train", "caption_file": "/path/to/captions.txt"}\', or '
                'add "allow_embedded_reference": true to distil on the embedded world\'s toy '
                "corpus instead"
            )


@dataclass
class ZSCLState(TaskState):
    start: list[torch.Tensor]  # the weights at the start of the task (the L2 anchor)
    ensemble: WeightAverage  # the weight ensemble of the task so far
    reference_draws: torch.Generator  # which reference images each step distils on
    teacher_images: ImageCache  # the initial model's embeddings of the reference images


@register_method
class ZSCL(Method):
    name = "zscl"
    relative_cost = 1.6
    summary = "distil the initial model on reference data, L2 to the task start, weight ensemble"
    Options = ZSCLOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        embedded = o.reference_folder is None or o.caption_file is None
        self.initial = self.snapshot()  # the teacher: the pretrained model, frozen
        if embedded:
            images, captions = make_corpus(
                max(o.reference_images, o.reference_texts), REFERENCE_SEED, progress=False
            )
        if o.reference_folder is not None:
            self.reference_images = image_folder(
                o.reference_folder, image_normalization(self.model)[2]
            )
        else:
            self.reference_images = images[: o.reference_images]
        if o.caption_file is not None:
            unique = read_captions(o.caption_file, o.reference_texts)
        else:
            unique = list(dict.fromkeys(captions))[: o.reference_texts]
        with torch.no_grad():
            tokens = self.tokenizer(unique).to(next(self.model.parameters()).device)
            self.reference_text = F.normalize(self.initial.encode_text(tokens), dim=-1)

    def begin_task(self, task: TaskFormat, index: int) -> ZSCLState:
        params = self.model_parameters()
        return ZSCLState(
            classification_only(self, task),
            index,
            start=[p.detach().clone() for p in params],
            ensemble=WeightAverage(params),
            reference_draws=torch.Generator().manual_seed(REFERENCE_SEED + index),
            # The teacher's embedding of each reference image, once per task (not per run,
            # so that a run resumed at a task boundary repeats the uninterrupted one exactly).
            teacher_images=ImageCache(functools.partial(embed_images, self.initial)),
        )

    def loss(self, batch: Batch, state: ZSCLState) -> torch.Tensor:
        o = self.options
        image = embed_images(self.model, batch.images)
        loss = self.classification_loss(image, state.task.text_side(self.model), batch.labels)
        idx = torch.randint(
            len(self.reference_images), (o.reference_batch,), generator=state.reference_draws
        )
        loss = add_image_text_distillation(
            loss,
            self.model,
            state.teacher_images,
            self.reference_images[idx],
            self.reference_text,
            o.temperature,
            o.image_loss,
            o.text_loss,
        )
        if o.l2:
            params = self.model_parameters()
            loss = loss + o.l2 * sum(
                ((p - s) ** 2).sum() for p, s in zip(params, state.start, strict=True)
            )
        return loss

    def after_step(self, state: ZSCLState, step: int) -> None:
        every = self.options.we_every
        if every and step % every == 0:
            state.ensemble.fold(self.model_parameters())

    def end_task(self, state: ZSCLState) -> None:
        if self.options.we_every:
            state.ensemble.copy_to(self.model_parameters())
