"""One checkpoint's probe features: what the method computes for each probe image and class text.

Features are taken exactly as the method evaluates a task (``Method.image_embeddings`` and
``Method.text_embeddings``: a MoE method routes, DDAS picks per image), with
:func:`~clviz.hooks.trace_batches` hooks on every residual block of both towers recording the
intermediate layers on the way:
token 0 (the class token) on the image side, the end-of-text token (where CLIP pools) averaged
over prompt templates on the text side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from clviz.analysis.drift.probe import Probe
from clviz.hooks import Trace, clip_block_names, trace_batches

FINAL = "embedding"  # the layer name of the final (projected, normalised) embeddings


@dataclass
class Snapshot:
    """Probe features at one checkpoint: {layer: N x W} for images, {layer: M x W} for texts.

    Layer ``"embedding"`` is the final normalised embedding (shared space of both towers); the
    others are residual blocks named as in the model (``visual.transformer.resblocks.3``).
    """

    image: dict[str, torch.Tensor] = field(default_factory=dict)
    text: dict[str, torch.Tensor] = field(default_factory=dict)

    def as_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"image": self.image, "text": self.text}

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, torch.Tensor]]) -> Snapshot:
        return cls(dict(d["image"]), dict(d["text"]))


def _block_outputs(trace: Trace, names: list[str], n: int) -> dict[str, torch.Tensor]:
    """Batch-first (n x L x W) outputs of the traced blocks (open_clip may run sequence-first)."""
    out = {}
    for name in names:
        if name in trace:
            x = trace[name]
            out[name] = (x if x.shape[0] == n else x.transpose(0, 1)).float()
    return out


@torch.no_grad()
def extract_snapshot(method, probe: Probe, batch_size: int = 256) -> Snapshot:
    """The probe's features under ``method`` now (any :class:`clviz.methods.Method`)."""
    blocks = clip_block_names(method.model)
    image: dict[str, list[torch.Tensor]] = {}
    text: dict[str, list[torch.Tensor]] = {}
    for i, task in enumerate(probe.tasks):
        chunks: dict[str, list[torch.Tensor]] = {}
        for embedding, trace in trace_batches(
            method.model,
            blocks["image"],
            probe.images[probe.of_task(i)],
            lambda x, task=task: method.image_embeddings(x, task),
            batch_size,
        ):
            chunks.setdefault(FINAL, []).append(embedding.cpu())
            for name, x in _block_outputs(trace, blocks["image"], len(embedding)).items():
                chunks.setdefault(name, []).append(x[:, 0].cpu())
        for name, parts in chunks.items():
            image.setdefault(name, []).append(torch.cat(parts))

        tokens = task.prompt_tokens
        with Trace(method.model, blocks["text"]) as trace:
            text.setdefault(FINAL, []).append(method.text_embeddings(task).cpu())
        eot = tokens.argmax(dim=-1)  # CLIP pools at the end-of-text token (the highest id)
        for name, x in _block_outputs(trace, blocks["text"], len(tokens)).items():
            rows = torch.arange(len(tokens), device=x.device)
            pooled = F.normalize(x[rows, eot.to(x.device)], dim=-1)
            per_class = pooled.view(task.num_classes, -1, pooled.shape[-1]).mean(1)
            text.setdefault(name, []).append(per_class.cpu())
    # A layer enters the snapshot only if every task reached it (e.g. a method may skip a tower).
    return Snapshot(
        {k: torch.cat(v) for k, v in image.items() if len(v) == len(probe.tasks)},
        {k: torch.cat(v) for k, v in text.items() if len(v) == len(probe.tasks)},
    )
