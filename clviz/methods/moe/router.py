"""Noisy top-k routers (Shazeer et al., 2017), one per task, as in MoE-Adapters.

A router is a gate matrix and a noise matrix, both d x E and zero-initialised. It reads one
vector per sample (token 0 of the layer's input: the class token on the image side, the first
token on the text side): ``logits = x W_g``, plus, during training only, Gaussian noise of
standard deviation ``softplus(x W_noise) + 0.01``. The top k logits are kept and softmaxed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions.normal import Normal

from clviz.errors import InputError

NOISE_EPSILON = 1e-2


class NoisyTopKRouter(nn.Module):
    """The routers of one layer: ``gates[t]`` and ``noise[t]`` for every task t added so far."""

    def __init__(self, width: int, num_experts: int, top_k: int = 2):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise InputError(
                f"top_k must be between 1 and the number of experts ({num_experts}), got {top_k}"
            )
        self.width, self.num_experts, self.top_k = width, num_experts, top_k
        self.gates = nn.ParameterList()
        self.noise = nn.ParameterList()

    def add_task(self) -> int:
        """Add a zero-initialised router for a new task; returns its index."""
        self.gates.append(nn.Parameter(torch.zeros(self.width, self.num_experts)))
        self.noise.append(nn.Parameter(torch.zeros(self.width, self.num_experts)))
        return len(self.gates) - 1

    def __len__(self) -> int:
        return len(self.gates)

    def forward(
        self, x: torch.Tensor, task: int | torch.Tensor, with_load: bool = True
    ) -> tuple[torch.Tensor, ...]:
        """Route ``x`` (N x d) with the router of ``task`` (one index for every sample, or N
        indices, one per sample).

        Returns the chosen experts (N x k), their gates (N x k, rows sum to 1), the dense gates
        (N x E) and the per-expert load used by the balancing loss (None without
        ``with_load``: it is only needed when that loss is added).
        """
        clean = self._project(x, task, self.gates)
        noisy = self.training
        if noisy:
            std = F.softplus(self._project(x, task, self.noise)) + NOISE_EPSILON
            logits = clean + torch.randn_like(clean) * std
        else:
            logits = clean
        m = min(self.top_k + 1, self.num_experts)
        top_logits, top_index = logits.topk(m, dim=-1)
        index, gates = top_index[:, : self.top_k], F.softmax(top_logits[:, : self.top_k], dim=-1)
        # Under autocast the clean logits are bf16 while softmax is kept in fp32.
        dense = logits.new_zeros(logits.shape, dtype=gates.dtype).scatter(1, index, gates)
        if not with_load:
            load = None
        elif noisy and self.top_k < self.num_experts:
            load = _prob_in_top_k(clean, logits, std, top_logits, self.top_k).sum(0)
        else:
            load = (dense > 0).sum(0).to(dense.dtype)
        return index, gates, dense, load

    @staticmethod
    def _project(x: torch.Tensor, task: int | torch.Tensor, weights: nn.ParameterList):
        """``x @ weights[t]`` with each sample's ``t``: one product when every sample shares
        a router, a per-sample gather of the routers otherwise."""
        if not isinstance(task, torch.Tensor):
            return x @ weights[int(task)]
        return torch.einsum("nd,nde->ne", x, torch.stack(list(weights))[task])


def _prob_in_top_k(clean, noisy, std, top_logits, k):
    """Probability that each expert stays in the top k under fresh noise (differentiable)."""
    m = top_logits.shape[1]
    flat = top_logits.flatten()
    pos_in = torch.arange(clean.shape[0], device=clean.device) * m + k
    threshold_in = flat[pos_in].unsqueeze(1)
    threshold_out = flat[pos_in - 1].unsqueeze(1)
    normal = Normal(torch.zeros((), device=clean.device), torch.ones((), device=clean.device))
    prob_in = normal.cdf((clean - threshold_in) / std)
    prob_out = normal.cdf((clean - threshold_out) / std)
    return torch.where(noisy > threshold_in, prob_in, prob_out)


def cv_squared(x: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation: small when ``x`` is uniform (0 for one element)."""
    if x.numel() <= 1:
        return x.new_zeros(())
    x = x.float()
    return x.var() / (x.mean() ** 2 + 1e-10)


def balance_loss(dense: torch.Tensor, load: torch.Tensor) -> torch.Tensor:
    """The reference's load-balancing loss: ``0.01 * (cv^2(importance) + cv^2(load))``."""
    return 1e-2 * (cv_squared(dense.sum(0)) + cv_squared(load))
