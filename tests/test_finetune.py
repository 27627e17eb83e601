"""Fine-tuning the whole tiny CLIP on one task lifts it and makes the others forget."""

from __future__ import annotations

import torch

from clviz.finetune import finetune
from clviz.world import get_stream, make_task
from clviz.zeroshot import zeroshot_accuracy


def test_finetuning_one_task_lifts_it_and_hurts_the_rest(tiny_model, tiny):
    tokenizer = tiny[2]
    torch.manual_seed(0)
    tasks = get_stream("default")
    target = "shapes"
    before = {t.name: zeroshot_accuracy(tiny_model, tokenizer, t) for t in tasks}
    finetune(tiny_model, tokenizer, make_task(target), steps=150, lr=1e-4, progress=False)
    after = {t.name: zeroshot_accuracy(tiny_model, tokenizer, t) for t in tasks}
    assert after[target] - before[target] >= 15
    others = [n for n in before if n != target]
    assert sum(after[n] < before[n] for n in others) >= len(others) / 2


def test_finetuning_is_deterministic(tiny, small_task):
    import copy

    model, _, tokenizer = tiny
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    la = finetune(a, tokenizer, small_task, steps=3, batch_size=8, seed=5, progress=False)
    lb = finetune(b, tokenizer, small_task, steps=3, batch_size=8, seed=5, progress=False)
    assert la == lb
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
