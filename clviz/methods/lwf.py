"""LwF, Learning without Forgetting (Li & Hoiem, 2017), for CLIP as in ZSCL's MTIL baselines.

While learning task t, the model from before the task is a frozen teacher. On the current
task's images, the student's logits over the classes of every *earlier* task are distilled
towards the teacher's (tempered soft labels). No old data is stored: the old classes enter only
through their names. Our choices, where the papers leave it open: one prompt per old class (its
task's first template), the teacher's class embeddings fixed for the task, ``T = 2``, weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clviz.methods.base import Method, register_method
from clviz.methods.distillation import distillation_loss
from clviz.world.tasks import Task
from clviz.zeroshot import class_embeddings, embed_images


@dataclass
class LwFOptions:
    weight: float = 1.0
    temperature: float = 2.0


@register_method
class LwF(Method):
    name = "lwf"
    summary = "distil the previous model's predictions over old classes on new images"
    Options = LwFOptions

    def begin_task(self, task: Task, index: int) -> None:
        self._teacher = None
        if not self.learned:
            return
        prompts = [t.templates[0].format(c) for t in self.learned for c in t.classnames]
        self._old_tokens = self.tokenizer(prompts)
        self._teacher = self.snapshot()
        with torch.no_grad():
            self._teacher_text = class_embeddings(self._teacher, self._old_tokens, len(prompts))

    def loss(self, images: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
        image = self.encode_images(images)
        loss = self.task_loss(image, labels, task)
        if self._teacher is None:
            return loss
        scale = self.model.logit_scale.exp().detach()
        with torch.no_grad():
            teacher_logits = scale * embed_images(self._teacher, images) @ self._teacher_text.T
        student_text = class_embeddings(self.model, self._old_tokens, len(self._old_tokens))
        student_logits = scale * image @ student_text.T
        return loss + self.options.weight * distillation_loss(
            teacher_logits, student_logits, self.options.temperature
        )

    def end_task(self, task: Task, index: int) -> None:
        self._teacher = None
