"""ATLAS adapter sites (Li et al., arXiv 2410.10923; reference code lihong2303/ATLAS on ViLT).

Two *sites* per residual block of both towers (the "attn" and "mlp" slots of
:mod:`clviz.methods.sites`): the attention output and the MLP output, before each residual
add::

    x = x + site_attn(attn(ln_1(x)))
    x = x + site_mlp(mlp(ln_2(x)))

A site holds adapters ``phi_j(u) = u + W_up SiLU(W_down u)``, one fixed key ``k_j`` per adapter,
and one *query set* per task: ``q_t^j`` for every adapter ``j`` that existed when task ``t``
was learned. With task ``t``'s query set active, a site computes, per sample,

    a_j   = phi_j(u)                                   # B x L x d
    z_j   = attention pooling of the tokens [q_t^j ; a_j] with q_t^j as the query
    alpha = (1 + cos(z_j, k_j)) / 2                    # in [0, 1], not normalised over j
    out   = sum_j alpha_j a_j

The pooling is multi-head attention without projections, scores scaled by ``1 / sqrt(d)`` as in
the reference (not ``1 / sqrt(d / heads)``); text tokens after the end-of-text token take part,
as padding does in the reference. A site with no active query set (``task=None``) passes ``u``
through: that is the untouched backbone.

Keys and queries start as ``randn`` rows, norm about sqrt(d), as in the reference
(``nn.Parameter(torch.randn(1, hidden_size))`` in ``Vilt/vilt.py``), which the queries' 100x
learning rate is set against; the orthogonality penalty is the reference's
``((T T^T - I)**2).mean() / (rows * d)``, so it starts near ``(d - 1)**2 / d / rows**2`` (about
d for one row: 127 on the tiny CLIP, 767 on ViLT) and mostly pulls the rows towards unit norm.
Our choice where the reference leaves room: the up-projection starts at zero, so every ``phi_j``
starts as the identity (the reference uses PyTorch's default init). So at initialisation a
site outputs ``(sum_j alpha_j) u`` with ``alpha_j`` near 1/2: ATLAS does *not* start as the
backbone, as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from clviz.errors import InputError
from clviz.methods.sites import Site, attach_sites, block_width, site_tower

SITES = ("attn", "mlp")


class Adapter(nn.Module):
    """``phi(u) = u + W_up SiLU(W_down u)``; the up-projection starts at zero (identity)."""

    def __init__(self, width: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u + self.up(F.silu(self.down(u)))


def attention_pool(queries: torch.Tensor, tokens: torch.Tensor, heads: int) -> torch.Tensor:
    """Pool ``tokens`` (B x J x L x d) with one query per adapter (J x d), attending over the
    query itself and the tokens, multi-head without projections; returns B x J x d."""
    b, j, length, d = tokens.shape
    dh = d // heads
    q = queries.view(j, heads, dh)
    t = tokens.reshape(b, j, length, heads, dh)
    scale = 1.0 / math.sqrt(d)
    s_self = (q * q).sum(-1)[None, :, :, None].expand(b, j, heads, 1) * scale
    s_tok = torch.einsum("jhe,bjlhe->bjhl", q, t) * scale
    w = torch.softmax(torch.cat([s_self, s_tok], dim=-1), dim=-1)
    z = w[..., :1] * q[None] + torch.einsum("bjhl,bjlhe->bjhe", w[..., 1:], t)
    return z.reshape(b, j, d)


def ortho_penalty(t: torch.Tensor) -> torch.Tensor:
    """The reference's ``mean((T T^T - I)^2) / (rows * d)`` of ``t`` (rows x d); zero for no
    rows."""
    if t.shape[0] == 0:
        return t.new_zeros(())
    eye = torch.eye(t.shape[0], dtype=t.dtype, device=t.device)
    return ((t @ t.T - eye) ** 2).mean() / t.numel()


class AtlasSite(Site):
    """Adapters, keys and per-task query sets of one site (attention or MLP output of a block).

    Task ``t``'s query set is ``cat(exp_queries[t], new_queries[t])``: the queries it learned for
    the adapters that existed before it (stage 1, experience) and the query of the adapter it
    added (stage 2, novel knowledge; absent when the task added none). It covers adapters
    ``0 .. len(set) - 1``, because adapters are only ever appended, by the newest task.
    """

    def __init__(self, width: int, heads: int, bottleneck: int = 64):
        super().__init__()
        self.width, self.heads, self.bottleneck = width, heads, bottleneck
        self.adapters = nn.ModuleList()
        self.keys = nn.ParameterList()
        self.exp_queries = nn.ParameterList()
        self.new_queries = nn.ParameterList()
        self.record = False  # accumulate alpha statistics (evaluation only)
        self.alpha_sum: torch.Tensor | None = None
        self.alpha_count = 0

    # ---------------------------------------------------------------- growth
    def add_task(self, init_from: int | None) -> int:
        """A query set for a new task over the adapters that exist now, copied from task
        ``init_from``'s set (random rows where it has none); returns its index."""
        n = len(self.adapters)
        rows = torch.randn(n, self.width)
        if init_from is not None:
            old = self.query_set(init_from).detach()
            rows[: len(old)] = old[:n]
        self.exp_queries.append(nn.Parameter(rows))
        self.new_queries.append(nn.Parameter(torch.zeros(0, self.width)))
        return len(self.exp_queries) - 1

    def add_adapter(self, task: int) -> int:
        """Append an adapter with a random key, owned by (the newest) ``task``."""
        if task != len(self.exp_queries) - 1 or len(self.new_queries[task]):
            raise InputError("only the newest task can add an adapter, and only one")
        if len(self.exp_queries[task]) != len(self.adapters):
            raise InputError("the task's experience queries must cover every existing adapter")
        self.adapters.append(Adapter(self.width, self.bottleneck))
        self.keys.append(nn.Parameter(torch.randn(self.width)))
        self.new_queries[task] = nn.Parameter(torch.randn(1, self.width))
        return len(self.adapters) - 1

    def query_set(self, task: int) -> torch.Tensor:
        """Task ``task``'s queries, one row per adapter it uses (J x d)."""
        return torch.cat([self.exp_queries[task], self.new_queries[task]])

    def key_matrix(self, count: int | None = None) -> torch.Tensor:
        keys = list(self.keys)[: len(self.keys) if count is None else count]
        return torch.stack(keys) if keys else torch.zeros(0, self.width)

    def ortho_loss(self, task: int, keys: bool) -> torch.Tensor:
        """The penalty over ``task``'s queries (and over all keys when ``keys``)."""
        loss = ortho_penalty(self.query_set(task))
        return loss + ortho_penalty(self.key_matrix()) if keys else loss

    # ---------------------------------------------------------------- forward
    def mix(self, u: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(site output ``sum_j alpha_j phi_j(u)``, alpha B x J) of batch-first ``u`` (B x L x d).

        Computed without materialising the J adapter outputs (B x J x L x d): every term of the
        pooling and of the weighted sum is linear in ``phi_j(u) = u + W_up h_j + b_up`` with
        ``h_j = SiLU(W_down u + b_down)``, so it is assembled from ``u`` and the small ``h_j``.
        :func:`attention_pool` on the explicit outputs gives the same numbers (tested).
        """
        q = self.query_set(task)
        j, (b, length, d) = len(q), u.shape
        heads, e = self.heads, d // self.heads
        ads = list(self.adapters)[:j]
        w_down = torch.cat([a.down.weight for a in ads])  # (J r) x d
        b_down = torch.cat([a.down.bias for a in ads])
        w_up = torch.stack([a.up.weight for a in ads])  # J x d x r
        b_up = torch.stack([a.up.bias for a in ads])  # J x d
        h = F.silu(F.linear(u, w_down, b_down)).view(b, length, j, -1)  # B L J r
        scale = 1.0 / math.sqrt(d)
        qh = q.view(j, heads, e)
        uh = u.view(b, length, heads, e)
        w_up_h = w_up.view(j, heads, e, -1)  # J H e r
        m = torch.einsum("jhe,jher->jhr", qh, w_up_h)
        s_tok = (
            torch.einsum("jhe,blhe->bjhl", qh, uh)
            + torch.einsum("jhr,bljr->bjhl", m, h)
            + (qh * b_up.view(j, heads, e)).sum(-1)[None, :, :, None]
        ) * scale
        s_self = ((qh * qh).sum(-1) * scale)[None, :, :, None].expand(b, j, heads, 1)
        w = torch.softmax(torch.cat([s_self, s_tok], dim=-1), dim=-1)
        w_self, w_tok = w[..., :1], w[..., 1:]
        z = (
            w_self * qh[None]
            + torch.einsum("bjhl,blhe->bjhe", w_tok, uh)
            + torch.einsum("bjhr,jher->bjhe", torch.einsum("bjhl,bljr->bjhr", w_tok, h), w_up_h)
            + w_tok.sum(-1, keepdim=True) * b_up.view(j, heads, e)[None]
        ).reshape(b, j, d)
        alpha = (1 + F.cosine_similarity(z, self.key_matrix(j)[None], dim=-1)) / 2  # B x J
        mixed = (h * alpha[:, None, :, None]).reshape(b, length, -1)  # B L (J r)
        out = (
            alpha.sum(-1)[:, None, None] * u
            + F.linear(mixed, w_up.permute(1, 0, 2).reshape(d, -1))
            + (alpha @ b_up)[:, None]
        )
        return out, alpha

    def outputs(self, u: torch.Tensor, task: int) -> torch.Tensor:
        """The J adapter outputs ``phi_j(u)`` explicitly (B x J x L x d), for checks and figures."""
        return torch.stack([a(u) for a in list(self.adapters)[: len(self.query_set(task))]], 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The site's output with the active query set (``self.task``; None: ``u`` itself)."""
        if self.task is None or not len(self.query_set(self.task)):
            return u
        out, alpha = self.mix(u, self.task)
        if self.record:
            s = alpha.detach().sum(0)
            self.alpha_sum = s if self.alpha_sum is None else self.alpha_sum + s
            self.alpha_count += alpha.shape[0]
        return out

    # ---------------------------------------------------------------- structure
    def structure(self) -> dict[str, list[int] | int]:
        """Sizes needed to rebuild empty parameters before ``load_state_dict``."""
        return {
            "adapters": len(self.adapters),
            "exp": [len(q) for q in self.exp_queries],
            "new": [len(q) for q in self.new_queries],
        }

    def rebuild(self, structure: dict) -> None:
        """Create parameters of the saved shapes (values come from ``load_state_dict``)."""
        while len(self.adapters) < structure["adapters"]:
            self.adapters.append(Adapter(self.width, self.bottleneck))
            self.keys.append(nn.Parameter(torch.zeros(self.width)))
        for e, n in zip(structure["exp"], structure["new"], strict=True):
            self.exp_queries.append(nn.Parameter(torch.zeros(e, self.width)))
            self.new_queries.append(nn.Parameter(torch.zeros(n, self.width)))


def attach_atlas(model: nn.Module, bottleneck: int = 64) -> dict[str, AtlasSite]:
    """Give every residual block of both towers its two ATLAS sites; freeze the backbone.

    Returns the sites by name (``visual.transformer.resblocks.0.attn``, ``transformer...mlp``),
    image tower first. No adapter or query set exists yet.
    """

    def make(name: str, block: nn.Module) -> dict[str, AtlasSite]:
        width, heads = block_width(block)
        return {slot: AtlasSite(width, heads, bottleneck) for slot in SITES}

    return attach_sites(model, make)


def site_info(name: str) -> tuple[str, int, str]:
    """(tower 'image' or 'text', layer, site 'attn' or 'mlp') of a site name."""
    parts = name.split(".")
    return site_tower(name), int(parts[-2]), parts[-1]


@contextmanager
def recording_alphas(sites: dict[str, AtlasSite]) -> Iterator[dict[str, list[float] | None]]:
    """Collect each site's mean alpha per adapter over the forward passes inside the block; the
    yielded dict is filled on exit (None for a site no sample passed, e.g. a text-only task's
    image tower)."""
    for site in sites.values():
        site.record, site.alpha_sum, site.alpha_count = True, None, 0
    result: dict[str, list[float] | None] = {}
    try:
        yield result
    finally:
        for name, site in sites.items():
            mean = None if site.alpha_sum is None else site.alpha_sum / site.alpha_count
            result[name] = None if mean is None else [round(float(v), 5) for v in mean]
            site.record, site.alpha_sum, site.alpha_count = False, None, 0
