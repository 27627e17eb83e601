"""CLIP's two towers as a classifier: class embeddings from prompts, image embeddings, zero-shot.

As in CLIP: each class is embedded by averaging the normalised text embeddings of every prompt
template filled with its name; an image is assigned the class of highest cosine similarity.
Everything here is a plain function of a model, so methods, formats and analyses share it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clviz.backbone import to_model_input
from clviz.core.task import Task


def prompt_tokens(tokenizer, task: Task) -> torch.Tensor:
    """Token ids of every (class, template) prompt of ``task``, class-major: (C * T) x L."""
    return tokenizer([p for c in range(task.num_classes) for p in task.prompts(c)])


def encode_texts(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Normalised text embeddings of ``tokens`` (differentiable)."""
    device = next(model.parameters()).device
    return F.normalize(model.encode_text(tokens.to(device)), dim=-1)


def class_embeddings(model: nn.Module, tokens: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Normalised (C x D) class embeddings: the mean over templates of normalised prompts.

    ``tokens`` are class-major (:func:`prompt_tokens`). Differentiable, so methods that train
    the text tower use it inside their loss.
    """
    feats = encode_texts(model, tokens)
    return F.normalize(feats.view(num_classes, -1, feats.shape[-1]).mean(dim=1), dim=-1)


@torch.no_grad()
def class_text_features(model: nn.Module, tokenizer, task: Task) -> torch.Tensor:
    """Class embeddings of ``task`` from its own prompt templates, without gradients."""
    return class_embeddings(model, prompt_tokens(tokenizer, task), task.num_classes)


def encode_images(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The image tower's output for uint8 ``images`` (not normalised; differentiable)."""
    return model.encode_image(to_model_input(images, model))


def embed_images(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Normalised image embeddings of uint8 ``images`` (differentiable)."""
    return F.normalize(encode_images(model, images), dim=-1)


@torch.no_grad()
def image_features(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Normalised image embeddings of uint8 images, computed in batches without gradients."""
    return torch.cat(
        [embed_images(model, images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )


@torch.no_grad()
def zeroshot_accuracy(model: nn.Module, tokenizer, task: Task, batch_size: int = 256) -> float:
    """Top-1 accuracy (percent) of ``model`` on ``task``'s test split with its own prompts."""
    was_training = model.training
    model.eval()
    text = class_text_features(model, tokenizer, task)
    pred = (image_features(model, task.test_images, batch_size) @ text.T).argmax(dim=-1)
    model.train(was_training)
    return 100.0 * (pred.cpu() == task.test_labels).float().mean().item()
