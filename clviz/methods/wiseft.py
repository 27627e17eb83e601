"""WiSE-FT (Wortsman et al., CVPR 2022) in the continual setting.

After each task the fine-tuned weights are interpolated with the weights from before the task:
``theta <- (1 - alpha) * theta_before + alpha * theta_finetuned``. ZSCL's MTIL table runs it this
way; ``alpha = 0.5`` is our default (the paper sweeps it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clviz.methods.base import Method, register_method
from clviz.world.tasks import Task


@dataclass
class WiseFTOptions:
    alpha: float = 0.5  # weight of the freshly fine-tuned model


@register_method
class WiseFT(Method):
    name = "wise-ft"
    summary = "fine-tune, then average weights with the model from before the task"
    Options = WiseFTOptions

    def begin_task(self, task: Task, index: int) -> None:
        self._before = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def end_task(self, task: Task, index: int) -> None:
        a = self.options.alpha
        state = self.model.state_dict()
        for key, before in self._before.items():
            if state[key].is_floating_point():
                state[key].copy_((1 - a) * before + a * state[key])
        del self._before
