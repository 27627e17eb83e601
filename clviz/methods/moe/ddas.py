"""DDAS, the Distribution Discriminative Auto-Selector of MoE-Adapters.

One small autoencoder per learned task (``Linear -> ReLU -> Linear -> Sigmoid``, as in the
reference's ``AutoEncoder.py``) learns to reconstruct generic frozen image features of that
task's training images. At test time every autoencoder reconstructs the input's features; the
task whose autoencoder does best wins, and if even the best error is above a threshold the
input is out of distribution and goes to the untouched backbone (zero-shot).

Where we differ from the reference, and why:

- **Features.** The reference feeds ImageNet-AlexNet conv5 features through a sigmoid. Offline
  we have no AlexNet, so we use the frozen backbone's own tokens after a late block
  (``feature_block``), also through a sigmoid: generic, pre-adapter features, computed with
  every adapter bypassed. ``pool="tokens"`` (the embedded default) keeps every token
  (17 x 128 = 2,176 floats per image on the tiny CLIP); ``pool="mean"`` (the MTIL profile)
  keeps their mean, ``width`` floats per image: 768 on ViT-B/16, i.e. 3 KB per image and
  at most 75,750 x 3 KB = 233 MB for the largest MTIL training set (Food-101), where every
  token would take 197 x 768 x 4 B = 605 KB per image, 46 GB.
- **Threshold.** The reference uses a hand-set threshold. We calibrate it: a share of each
  task's training images (``heldout``) is kept from its autoencoder, and the threshold is the
  ``quantile`` of the winning reconstruction error over the held-out images of all learned
  tasks. So about ``1 - quantile`` of in-distribution images are sent to the backbone.
- **Decisions.** The reference decides once per evaluation batch (mean error over the batch).
  We decide per sample by default, the honest setting when batches mix domains; ``per_batch``
  restores the reference's behaviour.
"""

from __future__ import annotations

import torch
from torch import nn

from clviz.core.clip import encode_images
from clviz.hooks import clip_block_names, trace_batches

POOLS = ("tokens", "mean")


class TaskAutoencoder(nn.Module):
    """``Linear(in -> code) -> ReLU -> Linear(code -> in) -> Sigmoid``."""

    def __init__(self, in_dims: int, code_dims: int = 100):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(in_dims, code_dims), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(code_dims, in_dims), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def errors(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample mean squared reconstruction error."""
        return ((self(x) - x) ** 2).mean(dim=-1)


class DDAS(nn.Module):
    """The autoencoders of the tasks learned so far, their threshold, and the selection rule."""

    def __init__(
        self,
        code_dims: int = 100,
        steps: int = 300,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        quantile: float = 0.95,
        feature_block: int = -2,
        pool: str = "tokens",
    ):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown DDAS pooling {pool!r}; valid: {', '.join(POOLS)}")
        self.code_dims, self.steps, self.lr = code_dims, steps, lr
        self.weight_decay, self.batch_size = weight_decay, batch_size
        self.quantile, self.feature_block, self.pool = quantile, feature_block, pool
        self.autoencoders = nn.ModuleList()
        self.register_buffer("threshold", torch.tensor(float("inf")))
        self.heldout: list[torch.Tensor] = []  # held-out features of each learned task

    @torch.no_grad()
    def features(
        self, model: nn.Module, images: torch.Tensor, batch_size: int = 256
    ) -> torch.Tensor:
        """sigmoid(the tokens after block ``feature_block`` of the image tower): all of them
        flattened (``pool="tokens"``) or their mean (``pool="mean"``); fp32 on any device.

        Call it with every adapter bypassed (``clviz.methods.sites.use_task(sites, None)``), or
        on the untouched backbone: DDAS must see generic, frozen features.
        """
        blocks = clip_block_names(model)["image"]
        if not -len(blocks) <= self.feature_block < len(blocks):
            raise ValueError(
                f"DDAS reads the features after image block {self.feature_block}, but this "
                f"backbone's image tower has {len(blocks)} block(s); set the option "
                "ddas_block to one that exists"
            )
        block = blocks[self.feature_block]
        batches = trace_batches(
            model,
            block,
            images,
            lambda x: encode_images(model, x),
            batch_size,
            stop=True,
        )
        pooled = (
            trace[block].flatten(1) if self.pool == "tokens" else trace[block].mean(dim=1)
            for _, trace in batches
        )
        return torch.cat([torch.sigmoid(p.float()) for p in pooled])

    def fit_task(
        self, features: torch.Tensor, heldout: torch.Tensor, generator: torch.Generator
    ) -> list[float]:
        """Train a new autoencoder on one task's features, keep its held-out features, and
        recalibrate the threshold; returns the training losses."""
        ae = TaskAutoencoder(features.shape[1], self.code_dims).to(features.device)
        optimizer = torch.optim.Adam(ae.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        losses = []
        for _ in range(self.steps):
            idx = torch.randint(
                len(features), (min(self.batch_size, len(features)),), generator=generator
            )
            loss = ae.errors(features[idx]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        ae.eval().requires_grad_(False)
        self.autoencoders.append(ae)
        self.heldout.append(heldout)
        self.calibrate()
        return torch.stack(losses).tolist()

    @torch.no_grad()
    def errors(self, features: torch.Tensor) -> torch.Tensor:
        """Reconstruction error of every sample under every learned task's autoencoder: N x T."""
        return torch.stack([ae.errors(features) for ae in self.autoencoders], dim=1)

    @torch.no_grad()
    def calibrate(self) -> float:
        """Threshold = ``quantile`` of the winning error on held-out in-distribution images."""
        best = torch.cat([self.errors(h).min(dim=1).values for h in self.heldout])
        self.threshold.fill_(torch.quantile(best, self.quantile).item())
        return float(self.threshold)

    @torch.no_grad()
    def select(
        self, features: torch.Tensor, per_batch: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(task index of each sample, out-of-distribution mask). ``per_batch`` decides once
        for the whole batch from the mean errors, as the reference does."""
        return self.select_from_errors(self.errors(features), per_batch)

    def select_from_errors(
        self, errors: torch.Tensor, per_batch: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`select`, given the N x T errors already computed by :meth:`errors`."""
        if per_batch:
            mean = errors.mean(dim=0)
            task, ood = mean.argmin(), mean.min() > self.threshold
            n = len(errors)
            return task.expand(n).clone(), ood.expand(n).clone()
        best, task = errors.min(dim=1)
        return task, best > self.threshold

    def __len__(self) -> int:
        return len(self.autoencoders)


def selection_confusion(selected: torch.Tensor, ood: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """Counts of each selected task id (last column: out of distribution) for one true task."""
    out = torch.zeros(num_tasks + 1, dtype=torch.long)
    out[:num_tasks] = torch.bincount(selected[~ood], minlength=num_tasks)[:num_tasks]
    out[num_tasks] = int(ood.sum())
    return out
