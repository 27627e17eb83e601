"""Bottleneck expert adapters and their batched top-k mixture.

An expert is ``Linear(d -> r) -> ReLU -> Dropout(0.1) -> Linear(r -> d)``, its output scaled
by 0.1; the down-projection is Kaiming-initialised and the up-projection and biases are zero, so
an adapted model starts identical to its backbone (the reference's ``init_option='lora'``).

:class:`ExpertPool` evaluates only the k experts each sample was routed to (grouped dispatch,
as the reference's ``SparseDispatcher``): the N x k (sample, expert) assignments are sorted by
expert, the samples' tokens gathered once in that order, and each expert that received any runs
its two linear layers on its own contiguous slice; the outputs, weighted by their gates, are
added back to their samples. The work is N x k expert passes whatever E is; only the loop over
the experts actually chosen grows with E. An earlier version gathered a copy of each sample's
expert weights (N x k x r x d) and ran batched products; at the tiny CLIP's sizes the grouped
form is about twice as fast, forward and backward (``benchmarks/moe_expert_scaling.py``).
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
        if index.numel() == 0:  # no sample: nothing to route
            return torch.zeros_like(x)
        k = index.shape[1]
        order = torch.argsort(index.flatten(), stable=True)  # assignments grouped by expert
        sample = order // k
        counts = torch.bincount(index.flatten(), minlength=len(self.experts)).tolist()
        used = [e for e, c in enumerate(counts) if c]
        sizes = [counts[e] for e in used]
        tokens = torch.split(x[sample], sizes)
        hidden = torch.cat([self.experts[e].down(t) for e, t in zip(used, tokens, strict=True)])
        hidden = torch.split(self.dropout(F.relu(hidden)), sizes)
        out = torch.cat([self.experts[e].up(h) for e, h in zip(used, hidden, strict=True)])
        out = out * gates.flatten()[order].to(out.dtype)[:, None, None]
        mixed = out.new_zeros(x.shape[0], *out.shape[1:]).index_add_(0, sample, out)
        return self.scale * mixed
