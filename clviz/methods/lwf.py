"""LwF, Learning without Forgetting (Li & Hoiem, 2017), for CLIP.

While learning task t, the model from before the task is a frozen teacher. On the current
task's images, the student's logits over the classes of every *earlier* task are distilled
towards the teacher's (tempered soft labels). No old data is stored: the old classes enter only
through their names. Our choices, where the papers leave it open: one prompt per old class (its
task's first template), the teacher's class embeddings fixed for the task, ``T = 2``, weight 1;
nothing is distilled on the first task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clviz.core.clip import class_embeddings, embed_images
from clviz.core.formats import Batch, TaskFormat, logit_scale
from clviz.methods.base import Method, TaskState, classification_only, register_method
from clviz.methods.distill import distillation_loss


@dataclass
class LwFOptions:
    weight: float = 1.0
    temperature: float = 2.0


@dataclass
class LwFState(TaskState):
    teacher: nn.Module | None = None  # the model from before the task (None on the first)
    old_tokens: torch.Tensor | None = None  # one prompt per class of every earlier task
    teacher_text: torch.Tensor | None = None  # the teacher's embeddings of those prompts


@register_method
class LwF(Method):
    name = "lwf"
    summary = "distil the previous model's predictions over old classes on new images"
    Options = LwFOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.old_prompts: list[str] = []  # one prompt per class of every task learned so far

    def begin_task(self, task: TaskFormat, index: int) -> LwFState:
        state = LwFState(classification_only(self, task), index)
        if self.old_prompts:
            state.old_tokens = self.tokenizer(self.old_prompts)
            state.teacher = self.snapshot()
            with torch.no_grad():
                state.teacher_text = class_embeddings(
                    state.teacher, state.old_tokens, len(self.old_prompts)
                )
        return state

    def loss(self, batch: Batch, state: LwFState) -> torch.Tensor:
        image = embed_images(self.model, batch.images)
        loss = self.classification_loss(image, state.task.text_side(self.model), batch.labels)
        if state.teacher is None:
            return loss
        scale = logit_scale(self.model)
        with torch.no_grad():
            teacher_logits = (
                scale * embed_images(state.teacher, batch.images) @ state.teacher_text.T
            )
        student_text = class_embeddings(self.model, state.old_tokens, len(state.old_tokens))
        student_logits = scale * image @ student_text.T
        return loss + self.options.weight * distillation_loss(
            teacher_logits, student_logits, self.options.temperature
        )

    def end_task(self, state: LwFState) -> None:
        task = state.task
        self.old_prompts += [task.templates[0].format(c) for c in task.classnames]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "old_prompts": list(self.old_prompts)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.old_prompts = list(state["old_prompts"])
