"""Weight-space operations, the one copy ZSCL, WiSE-FT and MulKI share: a running average of
weights within a task (ZSCL's weight ensemble) and an interpolation with the weights from
before the task (WiSE-FT)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from clviz.errors import InputError


class WeightAverage:
    """Running mean of a list of tensors, folded in one snapshot at a time (ZSCL's weight
    ensemble). As the reference (``we_model = copy.deepcopy(model)``, then
    ``(param_k * n + param_q) / (1 + n)`` with ``n`` counted from 1), the weights it starts from
    are the first sample: after n folds it is the mean of the start and the n snapshots."""

    def __init__(self, params: Sequence[torch.Tensor]):
        self.average = [p.detach().clone() for p in params]
        self.count = 0  # snapshots folded in, beside the start

    @torch.no_grad()
    def fold(self, params: Sequence[torch.Tensor]) -> None:
        self.count += 1
        w = 1.0 / (self.count + 1)
        for avg, p in zip(self.average, params, strict=True):
            avg.mul_(1 - w).add_(p.detach(), alpha=w)

    @torch.no_grad()
    def copy_to(self, params: Sequence[torch.Tensor]) -> None:
        """Write the average into ``params`` (no-op before the first fold)."""
        if not self.count:
            return
        for p, avg in zip(params, self.average, strict=True):
            p.copy_(avg)


def state_copy(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached copy of a ``state_dict`` (the weights to interpolate with later)."""
    return {k: v.detach().clone() for k, v in state.items()}


@torch.no_grad()
def interpolate_(
    state: Mapping[str, torch.Tensor], before: Mapping[str, torch.Tensor], alpha: float
) -> None:
    """In place: ``state <- (1 - alpha) * before + alpha * state`` for every floating tensor."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    for key, old in before.items():
        if state[key].is_floating_point():
            state[key].copy_((1 - alpha) * old + alpha * state[key])
