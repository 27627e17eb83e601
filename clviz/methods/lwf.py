"""LwF (Li & Hoiem, 2017) as ZSCL's MTIL baseline runs it for CLIP.

ZSCL's table (``mtil/scripts/lwf.sh``) runs LwF through ZSCL's own distillation code
(``mtil/src/models/finetune.py``, ``--method ZSCL --image_loss --text_loss``) with the *current*
task as the reference data and the previous task's checkpoint as the reference model:

- **teacher**: a frozen copy of the model from before the task; on the first task that is the
  pretrained model, so task 1 is distilled too;
- **reference batch**: a second batch of the current task's training images, drawn apart from
  the cross-entropy batch (the reference iterates its own loader over the task);
- **reference texts**: the current task's class prompts, one template, embedded by the
  *teacher* (its text embeddings are fixed during the task, so they are computed once);
- **both directions**: the student's image embeddings against the teacher's text embeddings,
  distilled towards the teacher's logits over the classes (image -> text) and over the batch's
  images (text -> image, the transposed logits), each with ``T = 2`` and weight 1. Only the image
  tower receives the distillation's gradient.

Unlike ZSCL there is no L2 penalty and no weight ensemble. Classic LwF distils the *old* tasks'
outputs on new data; with CLIP the old "heads" are class names, and ZSCL's variant keeps the
whole image-text geometry of the current task close to the previous model's instead.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from clviz.core.clip import class_embeddings, embed_images
from clviz.core.formats import Batch, ClassificationFormat, TaskFormat
from clviz.core.method import Method, TaskState
from clviz.core.validation import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, bounded
from clviz.methods.distill import add_image_text_distillation
from clviz.methods.registry import register_method
from clviz.methods.row_cache import RowCache


@dataclass
class LwFOptions:
    # weight of image -> text distillation (``--image_loss``)
    image_loss: float = bounded(1.0, NON_NEGATIVE)
    # weight of text -> image distillation (``--text_loss``)
    text_loss: float = bounded(1.0, NON_NEGATIVE)
    temperature: float = bounded(2.0, POSITIVE)  # ``--T``
    # None: the training batch size, as the reference
    reference_batch: int | None = bounded(None, AT_LEAST_ONE, count=True)


@dataclass
class LwFState(TaskState):
    teacher: RowCache  # the model from before the task (the pretrained one on task 1)
    teacher_text: torch.Tensor  # the teacher's embeddings of the task's class prompts


@register_method
class LwF(Method):
    name = "lwf"
    listing_order = 2
    formats = (ClassificationFormat,)
    relative_cost = 1.7
    summary = "distil the previous model's image-text logits on the current task (ZSCL's LwF)"
    Options = LwFOptions

    def begin_task(self, task: TaskFormat, index: int, draws: torch.Generator) -> LwFState:
        teacher = self.snapshot()
        tokens = task.for_training("first").prompt_tokens  # one prompt per class
        with torch.no_grad():
            teacher_text = class_embeddings(teacher, tokens, task.num_classes)
        embed = RowCache(functools.partial(embed_images, teacher))  # frozen: once per image
        return LwFState(task, index, draws, embed, teacher_text)

    def loss(self, batch: Batch, state: LwFState) -> torch.Tensor:
        o = self.options
        task = state.task
        image = embed_images(self.model, batch.images)
        loss = self.classification_loss(image, task.text_side(self.model), batch.labels)
        size = o.reference_batch or self.train_config.batch_size
        index = torch.randint(task.size("train"), (size,), generator=state.draws)
        reference = task.batch("train", index).to(self.device).images
        return add_image_text_distillation(
            loss,
            self.model,
            functools.partial(state.teacher, (task.name, "train"), index),
            reference,
            state.teacher_text,
            o.temperature,
            o.image_loss,
            o.text_loss,
        )
