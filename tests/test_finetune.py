"""Fine-tuning the whole tiny CLIP on one task lifts it and makes the others forget."""

from __future__ import annotations

import copy

import torch

from clviz.methods import TrainConfig, get_method
from clviz.world import get_stream, make_task
from clviz.zeroshot import zeroshot_accuracy


def finetune(model, tokenizer, task, steps, seed=0, batch_size=64):
    method = get_method("finetune")(
        model, tokenizer, TrainConfig(steps=steps, batch_size=batch_size)
    )
    return method.train_task(task, 0, torch.Generator().manual_seed(seed), progress=False)


def test_finetuning_one_task_lifts_it_and_hurts_the_rest(tiny_model, tiny):
    tokenizer = tiny[2]
    torch.manual_seed(0)
    tasks = get_stream("default")
    target = "shapes"
    before = {t.name: zeroshot_accuracy(tiny_model, tokenizer, t) for t in tasks}
    finetune(tiny_model, tokenizer, make_task(target), steps=150)
    after = {t.name: zeroshot_accuracy(tiny_model, tokenizer, t) for t in tasks}
    assert after[target] - before[target] >= 15
    others = [n for n in before if n != target]
    assert sum(after[n] < before[n] for n in others) >= len(others) / 2


def test_finetuning_is_deterministic(tiny, small_task):
    model, _, tokenizer = tiny
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    sa = finetune(a, tokenizer, small_task, steps=3, seed=5, batch_size=8)
    sb = finetune(b, tokenizer, small_task, steps=3, seed=5, batch_size=8)
    assert sa == sb
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
