"""Task formats on CLIP: how each kind of task becomes logits through the two towers.

ATLAS learns image-only, text-only and image-text tasks with one model. On CLIP every format
scores with cosine similarities times the (frozen) logit scale, and its "head" is the text
tower's embeddings of class or answer texts through the *adapted* text tower:

- :class:`ClassificationFormat` (image, uni-modal): image vs class-name prompts, as the engine.
- :class:`MatchingFormat` (image-text, multi-modal): binary matching or 3-way entailment. The one
  similarity ``s = cos(image, sentence)`` is turned into class logits by a tiny per-task head,
  ``logit_c = scale * w_c * (s - c) + b_c`` (``w`` starts at -1..1 spread over the classes, the
  centre ``c`` at the mean training similarity, ``b`` at 0): a learnable threshold for two
  classes, an ordinal scheme for three. Our choice: the reference puts a linear classifier on
  ViLT's fused token, which CLIP does not have.
- :class:`VQAFormat` (image-text, multi-modal): closed answer set scored as text: the image
  against "<question> <answer>." for every answer.
- :class:`TextFormat` (text, uni-modal): a sentence against the label texts, both through the
  text tower.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clviz.world.multimodal import VQA_ANSWERS, VQA_QUESTIONS, PairTask
from clviz.world.tasks import Task
from clviz.zeroshot import class_embeddings, embed_images, prompt_tokens


def _texts(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    device = next(model.parameters()).device
    return F.normalize(model.encode_text(tokens.to(device)), dim=-1)


def _scale(model: nn.Module) -> torch.Tensor:
    return model.logit_scale.exp().detach()


class TaskFormat:
    """One task of a mixed stream: labels, and logits of a batch of examples by index."""

    name: str
    modality: str  # "image" | "text" | "image-text"
    labelnames: tuple[str, ...]
    train_labels: torch.Tensor
    test_labels: torch.Tensor

    @property
    def multimodal(self) -> bool:
        return self.modality == "image-text"

    @property
    def num_classes(self) -> int:
        return len(self.labelnames)

    def labels(self, split: str) -> torch.Tensor:
        return self.train_labels if split == "train" else self.test_labels

    def make_head(self) -> nn.Module | None:
        """The task's own learnable parameters beyond the adapters (None for most formats)."""
        return None

    @torch.no_grad()
    def init_head(self, model: nn.Module, head: nn.Module | None) -> None:
        """Initialise ``head`` from the model as it is now (before the task trains)."""

    def text_side(self, model: nn.Module) -> Any:
        """What every example shares: class / answer / label embeddings (differentiable)."""
        return None

    def logits_with(
        self, model: nn.Module, shared: Any, split: str, idx: torch.Tensor, head: nn.Module | None
    ) -> torch.Tensor:
        raise NotImplementedError

    def logits(
        self, model: nn.Module, split: str, idx: torch.Tensor, head: nn.Module | None = None
    ) -> torch.Tensor:
        """B x C logits of examples ``idx`` of ``split`` (differentiable)."""
        return self.logits_with(model, self.text_side(model), split, idx, head)

    @torch.no_grad()
    def predict(
        self, model: nn.Module, split: str = "test", head: nn.Module | None = None, batch=256
    ) -> torch.Tensor:
        """Logits of every example of ``split``, in batches, without gradients."""
        shared = self.text_side(model)
        n = len(self.labels(split))
        return torch.cat(
            [
                self.logits_with(model, shared, split, torch.arange(i, min(i + batch, n)), head)
                for i in range(0, n, batch)
            ]
        ).cpu()

    def accuracy(self, model: nn.Module, head: nn.Module | None = None) -> float:
        """Top-1 test accuracy in percent."""
        pred = self.predict(model, "test", head).argmax(-1)
        return 100.0 * (pred == self.test_labels).float().mean().item()


class ClassificationFormat(TaskFormat):
    """Image classification against class-name prompts (an engine :class:`Task`)."""

    modality = "image"

    def __init__(self, task: Task, tokenizer):
        self.task, self.name, self.labelnames = task, task.name, task.classnames
        self.train_labels, self.test_labels = task.train_labels, task.test_labels
        self.tokens = prompt_tokens(tokenizer, task)

    def images(self, split: str) -> torch.Tensor:
        return self.task.train_images if split == "train" else self.task.test_images

    def text_side(self, model: nn.Module) -> torch.Tensor:
        return class_embeddings(model, self.tokens, self.num_classes)

    def logits_with(self, model, shared, split, idx, head):
        return _scale(model) * embed_images(model, self.images(split)[idx]) @ shared.T


class _PairFormat(TaskFormat):
    def __init__(self, pair: PairTask, tokenizer):
        self.pair, self.name, self.labelnames = pair, pair.name, pair.labelnames
        self.train_labels, self.test_labels = pair.train_labels, pair.test_labels
        self.tokens = {
            "train": tokenizer(list(pair.train_texts)),
            "test": tokenizer(list(pair.test_texts)),
        }

    def images(self, split: str) -> torch.Tensor:
        return self.pair.train_images if split == "train" else self.pair.test_images


class ScoreHead(nn.Module):
    """``logit_c = scale * w_c * (s - centre) + b_c`` from one similarity ``s`` per example."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, num_classes))
        self.b = nn.Parameter(torch.zeros(num_classes))
        self.centre = nn.Parameter(torch.zeros(()))

    def forward(self, s: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return scale * self.w * (s[:, None] - self.centre) + self.b


class MatchingFormat(_PairFormat):
    """Image-text matching (2 classes) or entailment (3): one similarity, a per-task head."""

    modality = "image-text"

    def make_head(self) -> nn.Module:
        return ScoreHead(self.num_classes)

    def similarity(self, model: nn.Module, split: str, idx: torch.Tensor) -> torch.Tensor:
        image = embed_images(model, self.images(split)[idx])
        return (image * _texts(model, self.tokens[split][idx])).sum(-1)

    @torch.no_grad()
    def init_head(self, model: nn.Module, head: nn.Module | None) -> None:
        idx = torch.arange(min(256, len(self.train_labels)))
        head.centre.copy_(self.similarity(model, "train", idx).mean())

    def logits_with(self, model, shared, split, idx, head):
        if head is None:
            raise ValueError(f"{self.name}: a matching task needs its ScoreHead (make_head())")
        return head(self.similarity(model, split, idx), _scale(model))


class VQAFormat(_PairFormat):
    """Closed-answer VQA: the image against "<question> <answer>." for every answer."""

    modality = "image-text"

    def __init__(self, pair: PairTask, tokenizer):
        super().__init__(pair, tokenizer)
        questions = [q for q, _ in VQA_QUESTIONS.values()]
        self.qtype = {
            split: torch.tensor([questions.index(t) for t in texts])
            for split, texts in (("train", pair.train_texts), ("test", pair.test_texts))
        }
        self.answer_tokens = tokenizer([f"{q} {a}." for q in questions for a in VQA_ANSWERS])
        self.shape = (len(questions), len(VQA_ANSWERS))

    def text_side(self, model: nn.Module) -> torch.Tensor:
        return _texts(model, self.answer_tokens).view(*self.shape, -1)  # Q x A x D

    def logits_with(self, model, shared, split, idx, head):
        image = embed_images(model, self.images(split)[idx])
        texts = shared[self.qtype[split][idx].to(image.device)]  # B x A x D
        return _scale(model) * torch.einsum("bad,bd->ba", texts, image)


class TextFormat(_PairFormat):
    """Text-only classification: a sentence against the label texts, both by the text tower."""

    modality = "text"
    label_template = "{}"

    def __init__(self, pair: PairTask, tokenizer):
        super().__init__(pair, tokenizer)
        self.label_tokens = tokenizer([self.label_template.format(n) for n in self.labelnames])

    def text_side(self, model: nn.Module) -> torch.Tensor:
        return _texts(model, self.label_tokens)

    def logits_with(self, model, shared, split, idx, head):
        return _scale(model) * _texts(model, self.tokens[split][idx]) @ shared.T


PAIR_FORMATS = {
    "matching": MatchingFormat,
    "entailment": MatchingFormat,
    "vqa": VQAFormat,
    "topics": TextFormat,
    "howmany": TextFormat,
}


def make_format(task: Task | PairTask, tokenizer) -> TaskFormat:
    """The format of a classification :class:`Task` or of a :class:`PairTask` family."""
    if isinstance(task, Task):
        return ClassificationFormat(task, tokenizer)
    if task.kind not in PAIR_FORMATS:
        raise ValueError(
            f"no CLIP format for task family {task.kind!r}; known: {', '.join(PAIR_FORMATS)}"
        )
    return PAIR_FORMATS[task.kind](task, tokenizer)
