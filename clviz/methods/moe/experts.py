"""Bottleneck expert adapters and their batched top-k mixture.

An expert is ``Linear(d -> r) -> ReLU -> Dropout(0.1) -> Linear(r -> d)``, its output scaled
by 0.1; the down-projection is Kaiming-initialised and the up-projection and biases are zero, so
an adapted model starts identical to its backbone (the reference's ``init_option='lora'``).

:class:`ExpertPool` evaluates only the k experts each sample was routed to, for all samples at
once: it stacks the experts' weights, gathers the k chosen ones per sample and runs two batched
matrix products. There is no Python loop over samples or experts, so a step costs the same for
E = 4 or E = 22 experts at fixed k (``benchmarks/moe_expert_scaling.py`` measures it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Expert(nn.Module):
    """One bottleneck adapter: ``scale * up(dropout(relu(down(x))))``."""

    def __init__(self, width: int, bottleneck: int = 64, dropout: float = 0.1, scale: float = 0.1):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        self.dropout = nn.Dropout(dropout)
        self.scale = scale
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.dropout(F.relu(self.down(x))))


class ExpertPool(nn.Module):
    """E experts of one layer, evaluated sparsely: each sample runs only its top-k experts."""

    def __init__(
        self,
        width: int,
        num_experts: int,
        bottleneck: int = 64,
        dropout: float = 0.1,
        scale: float = 0.1,
    ):
        super().__init__()
        self.experts = nn.ModuleList(
            Expert(width, bottleneck, dropout, scale) for _ in range(num_experts)
        )
        self.dropout = nn.Dropout(dropout)
        self.scale = scale

    def __len__(self) -> int:
        return len(self.experts)

    def forward(self, x: torch.Tensor, index: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Mixture output for ``x`` (N x L x d) given the chosen experts (N x k) and gates (N x k).

        Equal to ``sum_j gates[n, j] * experts[index[n, j]](x[n])`` for every sample n.
        """
        down_w = torch.stack([e.down.weight for e in self.experts])[index]  # N k r d
        down_b = torch.stack([e.down.bias for e in self.experts])[index]  # N k r
        up_w = torch.stack([e.up.weight for e in self.experts])[index]  # N k d r
        up_b = torch.stack([e.up.bias for e in self.experts])[index]  # N k d
        hidden = torch.einsum("nld,nkrd->nklr", x, down_w) + down_b[:, :, None, :]
        hidden = self.dropout(F.relu(hidden))
        out = torch.einsum("nklr,nkdr->nkld", hidden, up_w) + up_b[:, :, None, :]
        return self.scale * torch.einsum("nkld,nk->nld", out, gates)
