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

from clviz.core.clip import embed_images
from clviz.core.formats import Batch, ClassificationFormat, TaskFormat
from clviz.core.method import ClassIncrementalSetting, Method, ReferenceSpec, TaskState
from clviz.core.validation import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, bounded
from clviz.errors import InputError
from clviz.methods.distill import add_image_text_distillation
from clviz.methods.registry import register_method
from clviz.methods.row_cache import RowCache
from clviz.methods.weights import WeightAverage

REFERENCE_SEED = 7919  # the reference set is drawn apart from the pretraining corpus (seed 0)


@dataclass
class ZSCLOptions:
    reference_images: int = bounded(1024, AT_LEAST_ONE, count=True)
    reference_texts: int = bounded(256, AT_LEAST_ONE, count=True)
    # half the task batch: keeps the step under the 3-minute budget
    reference_batch: int = bounded(32, AT_LEAST_ONE, count=True)
    temperature: float = bounded(2.0, POSITIVE)
    image_loss: float = bounded(1.0, NON_NEGATIVE)  # weight of image->text distillation
    text_loss: float = bounded(1.0, NON_NEGATIVE)  # weight of text->image distillation
    # weight of the L2 penalty towards the weights at the start of the task
    l2: float = bounded(1.0, NON_NEGATIVE)
    # weight-ensemble period in steps; 0 disables the ensemble
    we_every: int = bounded(10, NON_NEGATIVE, count=True)
    reference_folder: str | None = None  # reference images: a folder in ImageNet's layout
    caption_file: str | None = None  # reference texts: one caption per line (or CC's .tsv)
    allow_embedded_reference: bool = True  # without the two above: the embedded corpus

    def __post_init__(self) -> None:  # checked when the options are made: before any work
        embedded = self.reference_folder is None or self.caption_file is None
        if embedded and not self.allow_embedded_reference:
            raise InputError(
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
    teacher_images: RowCache  # the initial model's embeddings of the reference images


@register_method
class ZSCL(Method):
    name = "zscl"
    listing_order = 4
    formats = (ClassificationFormat,)
    class_incremental = ClassIncrementalSetting()
    relative_cost = 1.6
    summary = "distil the initial model on reference data, L2 to the task start, weight ensemble"
    Options = ZSCLOptions

    @classmethod
    def reference_spec(cls, options: ZSCLOptions) -> ReferenceSpec:
        """The reference images and captions: the folder and caption file, else the embedded
        corpus drawn with its own seed, at its own 32 px (upsampled by the model's input)."""
        return ReferenceSpec(
            images=options.reference_images,
            captions=options.reference_texts,
            image_folder=options.reference_folder,
            caption_file=options.caption_file,
            corpus_seed=REFERENCE_SEED,
            corpus_size=32,
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initial = self.snapshot()  # the teacher: the pretrained model, frozen
        self.reference_images = self.reference.images
        unique = self.reference.captions
        with torch.no_grad():
            tokens = self.tokenizer(unique).to(next(self.model.parameters()).device)
            self.reference_text = F.normalize(self.initial.encode_text(tokens), dim=-1)

    def begin_task(self, task: TaskFormat, index: int, draws: torch.Generator) -> ZSCLState:
        params = self.model_parameters()
        return ZSCLState(
            task,
            index,
            draws,
            start=[p.detach().clone() for p in params],
            ensemble=WeightAverage(params),
            # The teacher's embedding of each reference image, once per task (not per run,
            # so that a run resumed at a task boundary repeats the uninterrupted one exactly),
            # keyed by the image's position among the reference images.
            teacher_images=RowCache(functools.partial(embed_images, self.initial)),
        )

    def loss(self, batch: Batch, state: ZSCLState) -> torch.Tensor:
        o = self.options
        image = embed_images(self.model, batch.images)
        loss = self.classification_loss(image, state.task.text_side(self.model), batch.labels)
        idx = torch.randint(len(self.reference_images), (o.reference_batch,), generator=state.draws)
        loss = add_image_text_distillation(
            loss,
            self.model,
            functools.partial(state.teacher_images, "reference", idx),
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
