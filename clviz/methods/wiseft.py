"""WiSE-FT (Wortsman et al., CVPR 2022) in the continual setting.

After each task the fine-tuned weights are interpolated with the weights from before the task:
``theta <- (1 - alpha) * theta_before + alpha * theta_finetuned``. ZSCL's MTIL table runs it this
way (``scripts/WiSE_finetune.sh``: ``--wise_merge --wise_ft_model n --wise_ft_alpha 0.8``, i.e.
``param_q * alpha + param_k * (1 - alpha)`` with ``param_k`` the model loaded at the task's
start), so ``alpha = 0.8`` is the default; the WiSE-FT paper sweeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clviz.core.formats import TaskFormat
from clviz.core.method import Method, TaskState
from clviz.core.validation import PROBABILITY, bounded
from clviz.methods.registry import register_method
from clviz.methods.weights import interpolate_, state_copy


@dataclass
class WiseFTOptions:
    # weight of the freshly fine-tuned model (ZSCL's setting)
    alpha: float = bounded(0.8, PROBABILITY)


@dataclass
class WiseFTState(TaskState):
    before: dict[str, torch.Tensor]  # the weights at the start of the task


@register_method
class WiseFT(Method):
    name = "wise-ft"
    listing_order = 3
    summary = "fine-tune, then average weights with the model from before the task"
    Options = WiseFTOptions

    def begin_task(self, task: TaskFormat, index: int, draws: torch.Generator) -> WiseFTState:
        self.add_head(task)
        return WiseFTState(task, index, draws, state_copy(self.model.state_dict()))

    def end_task(self, state: WiseFTState) -> None:
        interpolate_(self.model.state_dict(), state.before, self.options.alpha)
