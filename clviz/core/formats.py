"""Task formats: how each kind of task becomes logits through CLIP's two towers.

Every method learns and is evaluated through a format, so plain classification is one format
among several and ATLAS's mixed multi-modal streams use the same life cycle as MTIL's.
Every format scores with cosine similarities times the (frozen) logit scale; its "head" is the
text tower's embeddings of class, answer or label texts, through whatever the method adapted:

- :class:`ClassificationFormat` (image, uni-modal): images against class-name prompts (the
  mean over the task's templates), as CLIP's zero-shot classifier; training sees one prompt per
  class by default (:meth:`TaskFormat.for_training`, ``TrainConfig.prompts``).
- :class:`MatchingFormat` (image-text, multi-modal): binary matching or 3-way entailment. The
  one similarity ``s = cos(image, sentence)`` is turned into class logits by a tiny per-task
  :class:`ScoreHead`, ``logit_c = scale * w_c * (s - centre) + b_c``: a learnable threshold
  for two classes, an ordinal scheme for three. Our choice: ATLAS's reference puts a linear
  classifier on ViLT's fused token, which CLIP does not have.
- :class:`VQAFormat` (image-text, multi-modal): a closed answer set scored as text, the image
  against "<question> <answer>." for every answer.
- :class:`TextFormat` (text, uni-modal): a sentence against the label texts, both through the
  text tower.

A format is bound to a tokenizer (:func:`make_format`), so its prompts are tokenized once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from clviz.core import distributed
from clviz.core.clip import class_embeddings, embed_images, encode_texts, prompt_tokens
from clviz.core.feed import feed
from clviz.core.task import PairTask, Task
from clviz.errors import InputError

SPLITS = ("train", "test")


@dataclass(frozen=True, eq=False)
class Batch:
    """Some examples of one split of a task: what a format turns into logits.

    ``index`` says which examples (a slice, or a tensor of positions); ``images`` and
    ``tokens`` are present where the task has images or per-example texts.
    """

    split: str
    index: slice | torch.Tensor
    labels: torch.Tensor
    images: torch.Tensor | None = None
    tokens: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The batch with ``fn`` applied to each of its tensors."""
        tensors = {k: getattr(self, k) for k in ("labels", "images", "tokens")}
        return replace(self, **{k: None if v is None else fn(v) for k, v in tensors.items()})

    def pin_memory(self) -> Batch:
        """The batch in page-locked memory (what a DataLoader calls before a GPU copy)."""
        return self._map(torch.Tensor.pin_memory)

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device``, copied asynchronously (from pinned memory); itself for the
        CPU, where batches are made."""
        if device.type == "cpu":
            return self
        return self._map(lambda t: t.to(device, non_blocking=True))


def logit_scale(model: nn.Module) -> torch.Tensor:
    """CLIP's temperature as a multiplier, never trained by clviz."""
    return model.logit_scale.exp().detach()


class TaskFormat:
    """One task as a model sees it: labels, batches and the logits of a batch."""

    name: str
    modality: str  # "image" | "text" | "image-text"
    kind: ClassVar[str] = "task"  # what it is, in words (error messages name it)
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

    def size(self, split: str) -> int:
        return len(self.labels(split))

    def images(self, split: str) -> torch.Tensor | None:
        """The split's images (None for a text-only task)."""
        return None

    def tokens(self, split: str) -> torch.Tensor | None:
        """The split's per-example texts as tokens (None where examples have no text)."""
        return None

    def batch(self, split: str, index: slice | torch.Tensor) -> Batch:
        """Examples ``index`` of ``split``."""
        images, tokens = self.images(split), self.tokens(split)
        return Batch(
            split,
            index,
            self.labels(split)[index],
            None if images is None else images[index],
            None if tokens is None else tokens[index],
        )

    def batches(
        self,
        split: str,
        batch_size: int,
        device: torch.device | None = None,
        shard: bool = False,
    ) -> Iterator[Batch]:
        """The whole split in order, ``batch_size`` examples at a time, on ``device`` (real
        datasets decode ahead in DataLoader workers). ``shard``: only this process's share
        under torchrun (every ``world``-th batch)."""
        n = self.size(split)
        slices = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
        if shard:
            slices = list(distributed.shard_batches(slices))
        yield from feed(self, split, slices, device)

    def for_training(self, prompts: str) -> TaskFormat:
        """The format as training sees it (``TrainConfig.prompts``); evaluation always uses
        the format itself. Only class prompts have a choice to make."""
        return self

    def make_head(self) -> nn.Module | None:
        """The task's own learnable parameters beyond the model (None for most formats)."""
        return None

    @torch.no_grad()
    def init_head(self, model: nn.Module, head: nn.Module) -> None:
        """Initialise ``head`` from the model as it is now (before the task trains)."""

    def text_side(self, model: nn.Module) -> Any:
        """What every example shares: class / answer / label embeddings (differentiable)."""
        return None

    def logits(
        self, model: nn.Module, batch: Batch, head: nn.Module | None = None, text: Any = None
    ) -> torch.Tensor:
        """B x C logits of ``batch`` (differentiable); ``text`` is :meth:`text_side`, computed
        here when not given."""
        raise NotImplementedError


class ClassificationFormat(TaskFormat):
    """Image classification against class-name prompts (a :class:`Task`)."""

    modality = "image"
    kind = "image classification"

    def __init__(self, task: Task, tokenizer):
        self.task, self.name, self.labelnames = task, task.name, task.classnames
        self.train_labels, self.test_labels = task.train_labels, task.test_labels
        self.prompt_tokens = prompt_tokens(tokenizer, task)  # class-major, every template

    @property
    def classnames(self) -> tuple[str, ...]:
        return self.task.classnames

    @property
    def templates(self) -> tuple[str, ...]:
        return self.task.templates

    def images(self, split: str) -> torch.Tensor:
        return self.task.train_images if split == "train" else self.task.test_images

    def text_side(self, model: nn.Module) -> torch.Tensor:
        """The class embeddings (C x D)."""
        return class_embeddings(model, self.prompt_tokens, self.num_classes)

    def for_training(self, prompts: str) -> ClassificationFormat:
        """``"first"``: the same task with one prompt per class, its first template (what the
        references train on); ``"ensemble"``: every template, as evaluation."""
        per_class = len(self.prompt_tokens) // self.num_classes
        if prompts == "ensemble" or per_class == 1:
            return self
        view = copy.copy(self)
        tokens = self.prompt_tokens.view(self.num_classes, per_class, -1)
        view.prompt_tokens = tokens[:, 0].contiguous()
        return view

    def logits(self, model, batch, head=None, text=None):
        image = embed_images(model, batch.images)  # the image tower first, then the text tower
        text = self.text_side(model) if text is None else text
        return logit_scale(model) * image @ text.T

    def __repr__(self) -> str:
        return f"ClassificationFormat({self.task!r})"


class _PairFormat(TaskFormat):
    def __init__(self, pair: PairTask, tokenizer):
        self.pair, self.name, self.labelnames = pair, pair.name, pair.labelnames
        self.train_labels, self.test_labels = pair.train_labels, pair.test_labels
        self._tokens = {
            "train": tokenizer(list(pair.train_texts)),
            "test": tokenizer(list(pair.test_texts)),
        }

    def images(self, split: str) -> torch.Tensor | None:
        return self.pair.train_images if split == "train" else self.pair.test_images

    def tokens(self, split: str) -> torch.Tensor:
        return self._tokens[split]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.num_classes} classes)"


class ScoreHead(nn.Module):
    """``logit_c = scale * w_c * (s - centre) + b_c`` from one similarity ``s`` per example."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, num_classes))
        self.b = nn.Parameter(torch.zeros(num_classes))
        self.centre = nn.Parameter(torch.zeros(()))

    def forward(self, s: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return scale * self.w * (s[:, None] - self.centre) + self.b

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> ScoreHead:
        """A head rebuilt from its ``state_dict`` (its size is the length of ``w``)."""
        head = cls(len(state["w"]))
        head.load_state_dict(state)
        return head


class MatchingFormat(_PairFormat):
    """Image-text matching (2 classes) or entailment (3): one similarity, a per-task head."""

    modality = "image-text"
    kind = "image-text matching"

    def make_head(self) -> ScoreHead:
        return ScoreHead(self.num_classes)

    def similarity(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        image = embed_images(model, batch.images)
        return (image * encode_texts(model, batch.tokens)).sum(-1)

    @torch.no_grad()
    def init_head(self, model: nn.Module, head: nn.Module) -> None:
        """The centre starts at the mean similarity of (up to 256) training examples."""
        idx = torch.arange(min(256, len(self.train_labels)))
        head.centre.copy_(self.similarity(model, self.batch("train", idx)).mean())

    def logits(self, model, batch, head=None, text=None):
        if head is None:
            raise InputError(f"{self.name}: a matching task needs its ScoreHead (make_head())")
        return head(self.similarity(model, batch), logit_scale(model))


class VQAFormat(_PairFormat):
    """Closed-answer VQA: the image against "<question> <answer>." for every answer."""

    modality = "image-text"
    kind = "closed-answer VQA"

    def __init__(self, pair: PairTask, tokenizer):
        super().__init__(pair, tokenizer)
        # the task's closed sets: its questions (in order of appearance) and every answer
        questions = list(dict.fromkeys((*pair.train_texts, *pair.test_texts)))
        self.question = {
            split: torch.tensor([questions.index(t) for t in texts])
            for split, texts in (("train", pair.train_texts), ("test", pair.test_texts))
        }
        self.answer_tokens = tokenizer([f"{q} {a}." for q in questions for a in pair.labelnames])
        self.shape = (len(questions), len(pair.labelnames))

    def text_side(self, model: nn.Module) -> torch.Tensor:
        """Every question with every answer (Q x A x D)."""
        return encode_texts(model, self.answer_tokens).view(*self.shape, -1)

    def logits(self, model, batch, head=None, text=None):
        text = self.text_side(model) if text is None else text
        image = embed_images(model, batch.images)
        texts = text[self.question[batch.split][batch.index].to(image.device)]  # B x A x D
        return logit_scale(model) * torch.einsum("bad,bd->ba", texts, image)


class TextFormat(_PairFormat):
    """Text-only classification: a sentence against the label texts, both by the text tower."""

    modality = "text"
    kind = "text classification"

    def __init__(self, pair: PairTask, tokenizer):
        super().__init__(pair, tokenizer)
        self.label_tokens = tokenizer(list(self.labelnames))

    def text_side(self, model: nn.Module) -> torch.Tensor:
        """The label embeddings (C x D)."""
        return encode_texts(model, self.label_tokens)

    def logits(self, model, batch, head=None, text=None):
        text = self.text_side(model) if text is None else text
        return logit_scale(model) * encode_texts(model, batch.tokens) @ text.T


PAIR_FORMATS: dict[str, type[_PairFormat]] = {
    "matching": MatchingFormat,
    "entailment": MatchingFormat,
    "vqa": VQAFormat,
    "topics": TextFormat,
    "howmany": TextFormat,
}


def make_format(task: Task | PairTask | TaskFormat, tokenizer) -> TaskFormat:
    """The format of a classification :class:`Task` or of a :class:`PairTask` family (a
    format is returned as it is)."""
    if isinstance(task, TaskFormat):
        return task
    if isinstance(task, Task):
        return ClassificationFormat(task, tokenizer)
    if isinstance(task, PairTask):
        if task.kind not in PAIR_FORMATS:
            raise InputError(
                f"no CLIP format for task family {task.kind!r}; known: {', '.join(PAIR_FORMATS)}"
            )
        return PAIR_FORMATS[task.kind](task, tokenizer)
    raise TypeError(f"expected a Task, a PairTask or a TaskFormat, got {type(task).__name__}")
