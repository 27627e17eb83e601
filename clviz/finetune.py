"""Full fine-tuning of a CLIP on one task: the simplest way to watch forgetting happen.

The loss is the one every method of the suite trains with: cross-entropy with label smoothing
on ``logit_scale * cos(image, class text)`` against the current task's class prompts, with both
towers trainable (the logit scale stays fixed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from clviz.backbone import to_model_input
from clviz.world.tasks import Task
from clviz.zeroshot import class_embeddings, prompt_tokens


def task_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, tokens: torch.Tensor,
    num_classes: int, label_smoothing: float = 0.2,
) -> torch.Tensor:
    """Label-smoothed cross-entropy of scaled cosine logits against the task's class prompts."""
    image = F.normalize(model.encode_image(to_model_input(images, model)), dim=-1)
    logits = model.logit_scale.exp().detach() * image @ class_embeddings(model, tokens, num_classes).T
    return F.cross_entropy(logits, labels.to(logits.device), label_smoothing=label_smoothing)


def finetune(
    model: nn.Module, tokenizer, task: Task, steps: int = 200, lr: float = 1e-4,
    batch_size: int = 64, seed: int = 0, progress: bool = True,
) -> list[float]:
    """Fine-tune every parameter of ``model`` (except the logit scale) on ``task``; returns losses."""
    generator = torch.Generator().manual_seed(seed)
    params = [p for n, p in model.named_parameters() if n != "logit_scale"]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    tokens = prompt_tokens(tokenizer, task)
    n, losses = len(task.train_labels), []
    model.train()
    for _ in tqdm(range(steps), desc=f"fine-tuning on {task.name}", disable=not progress):
        idx = torch.randint(n, (min(batch_size, n),), generator=generator)
        loss = task_loss(model, task.train_images[idx], task.train_labels[idx], tokens, task.num_classes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses
