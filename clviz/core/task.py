"""The data of a task: what a continual-learning stream is made of.

- :class:`Task`: image classification (an MTIL dataset, a task of the embedded world, the union
  of the classes seen so far in class-incremental learning). Images are uint8 ``N x 3 x H x W``
  tensors, or a lazy store of the same shape for real datasets (:mod:`clviz.data.lazy`).
- :class:`PairTask`: examples made of a text and, for multi-modal tasks, an image (image-text
  matching, entailment, closed-answer VQA, text-only classification): ATLAS's mixed streams.

How a model scores a task is its *format* (:mod:`clviz.core.formats`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

FEW_SHOT_K = 5  # images per class of a few-shot stream (MoE-Adapters' few-shot MTIL setting)


@dataclass(frozen=True, eq=False)
class Task:
    """One classification task: names, prompts and images (uint8, N x 3 x H x W).

    ``class_templates`` gives each class its own templates (a class-incremental union of
    classes from differently prompted datasets); otherwise every class uses ``templates``.
    """

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    train_images: torch.Tensor = field(repr=False)
    train_labels: torch.Tensor = field(repr=False)
    test_images: torch.Tensor = field(repr=False)
    test_labels: torch.Tensor = field(repr=False)
    source: str = ""
    description: str = ""
    class_templates: tuple[tuple[str, ...], ...] = field(default=(), repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def chance(self) -> float:
        """Accuracy of guessing, in percent."""
        return 100.0 / self.num_classes

    def prompts(self, label: int) -> list[str]:
        """Every template of class ``label`` filled with its name."""
        templates = self.class_templates[label] if self.class_templates else self.templates
        return [t.format(self.classnames[label]) for t in templates]

    def __repr__(self) -> str:
        return (
            f"Task({self.name!r}, {self.num_classes} classes, {len(self.train_labels)} train / "
            f"{len(self.test_labels)} test images of {tuple(self.train_images.shape[-2:])} px)"
        )


@dataclass(frozen=True, eq=False)
class PairTask:
    """Examples made of an optional image and a text, each with a label among ``labelnames``."""

    name: str
    kind: str  # the family: "matching" | "vqa" | "topics" | "entailment" | "howmany"
    labelnames: tuple[str, ...]
    train_texts: tuple[str, ...] = field(repr=False)
    train_labels: torch.Tensor = field(repr=False)
    test_texts: tuple[str, ...] = field(repr=False)
    test_labels: torch.Tensor = field(repr=False)
    train_images: torch.Tensor | None = field(default=None, repr=False)
    test_images: torch.Tensor | None = field(default=None, repr=False)

    @property
    def multimodal(self) -> bool:
        return self.train_images is not None

    @property
    def num_classes(self) -> int:
        return len(self.labelnames)
