"""DDAS, the Distribution Discriminative Auto-Selector of MoE-Adapters.

One small autoencoder per learned task (``Linear -> ReLU -> Linear -> Sigmoid``, as in the
reference's ``AutoEncoder.py``) learns to reconstruct generic frozen image features of that
task's training images, and one more, the *generic* autoencoder, learns the features of generic
images (TinyImageNet in the reference; the world's pretraining corpus or an image folder here).
At test time every autoencoder reconstructs the input's features and the lowest error wins. The
input goes to the untouched backbone (zero-shot) in two ways, as in the reference's
``evaluation.py``: the generic autoencoder wins (it is index 0 there, so it also wins ties), or
even the winning error is above the threshold. :class:`Selection` keeps which of the two
sent each image.

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
  A fixed ``threshold`` replaces the calibration (the reference's hand-set values are
  :data:`REFERENCE_THRESHOLDS`; they were set for AlexNet features, so on ours they only show
  what a hand-set number does).
- **Decisions.** The reference decides once per evaluation batch (mean error over the batch).
  We decide per sample by default, the honest setting when batches mix domains; ``per_batch``
  restores the reference's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clviz.core.clip import encode_images
from clviz.errors import InputError
from clviz.hooks import clip_block_names, trace_batches

POOLS = ("tokens", "mean")
# The reference's hand-set thresholds (mtil/scripts/train/train_{full,few}_shot_*.sh).
REFERENCE_THRESHOLDS = {"full-shot": 655e-4, "few-shot": 585e-4}


@dataclass
class Selection:
    """DDAS's decision for each image: the winning task autoencoder's index (``task``), whether
    the image goes to the backbone (``ood``), and which mechanism sent it there: the generic
    autoencoder won (``generic``) or the winning error passed the threshold (``threshold``).
    ``ood == generic | threshold``; the two never overlap (a generic win is counted as that)."""

    task: torch.Tensor
    generic: torch.Tensor
    threshold: torch.Tensor

    @property
    def ood(self) -> torch.Tensor:
        """Whether each image goes to the backbone (by either mechanism)."""
        return self.generic | self.threshold


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
            raise InputError(f"unknown DDAS pooling {pool!r}; valid: {', '.join(POOLS)}")
        self.code_dims, self.steps, self.lr = code_dims, steps, lr
        self.weight_decay, self.batch_size = weight_decay, batch_size
        self.quantile, self.feature_block, self.pool = quantile, feature_block, pool
        self.autoencoders = nn.ModuleList()
        self.generic: TaskAutoencoder | None = None  # the generic autoencoder, once fitted
        self.register_buffer("threshold", torch.tensor(float("inf")))
        self.heldout: list[torch.Tensor] = []  # held-out features of each learned task
        self.in_dims: int | None = None  # the features' width, once an autoencoder is trained

    def checkpoint(self) -> dict[str, Any]:
        """Everything :meth:`restore` needs: the autoencoders' shape and number, their weights
        and the threshold, and each task's held-out features."""
        return {
            "in_dims": self.in_dims,
            "generic": self.generic is not None,
            "tasks": len(self.autoencoders),
            "weights": self.state_dict(),
            "heldout": list(self.heldout),
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Rebuild the autoencoders :meth:`checkpoint` describes, then load their weights."""
        device = self.threshold.device
        self.in_dims = saved["in_dims"]

        def frozen() -> TaskAutoencoder:
            return TaskAutoencoder(self.in_dims, self.code_dims).to(device).eval()

        self.generic = frozen().requires_grad_(False) if saved["generic"] else None
        self.autoencoders = nn.ModuleList(frozen() for _ in range(saved["tasks"]))
        self.autoencoders.requires_grad_(False)
        self.load_state_dict(saved["weights"])
        self.heldout = [h.to(device) for h in saved["heldout"]]

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
            raise InputError(
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

    def _train(
        self, features: torch.Tensor, generator: torch.Generator
    ) -> tuple[TaskAutoencoder, list[float]]:
        """A new autoencoder trained on ``features`` (frozen after), and its training losses."""
        self.in_dims = features.shape[1]
        ae = TaskAutoencoder(self.in_dims, self.code_dims).to(features.device)
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
        return ae.eval().requires_grad_(False), torch.stack(losses).tolist()

    def fit_generic(self, features: torch.Tensor, generator: torch.Generator) -> list[float]:
        """Train the generic autoencoder on generic images' features; returns its losses."""
        self.generic, losses = self._train(features, generator)
        return losses

    def fit_task(
        self, features: torch.Tensor, heldout: torch.Tensor, generator: torch.Generator
    ) -> list[float]:
        """Train a new autoencoder on one task's features, keep its held-out features, and
        recalibrate the threshold; returns the training losses."""
        ae, losses = self._train(features, generator)
        self.autoencoders.append(ae)
        self.heldout.append(heldout)
        self.calibrate()
        return losses

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

    def reconstruction_errors(
        self, features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(:meth:`errors`, :meth:`generic_errors`) of ``features``: what a selection reads."""
        return self.errors(features), self.generic_errors(features)

    @torch.no_grad()
    def generic_errors(self, features: torch.Tensor) -> torch.Tensor | None:
        """The generic autoencoder's error of every sample (None before it is fitted)."""
        return None if self.generic is None else self.generic.errors(features)

    @torch.no_grad()
    def select(
        self, features: torch.Tensor, per_batch: bool = False, threshold: float | None = None
    ) -> Selection:
        """DDAS's decision for each sample (:class:`Selection`). ``per_batch`` decides once
        for the whole batch from the mean errors, as the reference does; ``threshold``
        replaces the calibrated one."""
        return self.select_from_errors(*self.reconstruction_errors(features), per_batch, threshold)

    def select_from_errors(
        self,
        errors: torch.Tensor,
        generic: torch.Tensor | None = None,
        per_batch: bool = False,
        threshold: float | None = None,
    ) -> Selection:
        """:meth:`select`, given the N x T task errors and the N generic errors already
        computed by :meth:`errors` and :meth:`generic_errors`."""
        n = len(errors)
        if generic is None:
            generic = errors.new_full((n,), float("inf"))
        if per_batch:  # the batch's mean errors decide for every sample of the batch
            errors, generic = errors.mean(dim=0, keepdim=True), generic.mean().reshape(1)
        best, task = errors.min(dim=1)
        by_generic = generic <= best
        limit = self.threshold if threshold is None else torch.tensor(threshold)
        by_threshold = ~by_generic & (best > limit.to(best.device))
        if per_batch:
            task, by_generic, by_threshold = (
                x.expand(n).clone() for x in (task, by_generic, by_threshold)
            )
        return Selection(task, by_generic, by_threshold)

    def __len__(self) -> int:
        return len(self.autoencoders)


def selection_confusion(selected: torch.Tensor, ood: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """Counts of each selected task id (last column: out of distribution) for one true task."""
    out = torch.zeros(num_tasks + 1, dtype=torch.long)
    out[:num_tasks] = torch.bincount(selected[~ood], minlength=num_tasks)[:num_tasks]
    out[num_tasks] = int(ood.sum())
    return out
