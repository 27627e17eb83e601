"""Fine-tuning the whole tiny CLIP on one task lifts it and makes the others forget."""

from __future__ import annotations

import torch

from clviz.core import learn_task
from clviz.core.clip import zeroshot_accuracy
from clviz.world import get_stream, make_task


def test_finetuning_one_task_lifts_it_and_hurts_the_rest(make_method, tiny):
    tokenizer = tiny[2]
    method = make_method("finetune", steps=150)
    method.train_config.batch_size = 64
    tasks = get_stream("default")
    target = "shapes"
    before = {t.name: zeroshot_accuracy(method.model, tokenizer, t) for t in tasks}
    learn_task(method, make_task(target), seed=0, progress=False)
    after = {t.name: zeroshot_accuracy(method.model, tokenizer, t) for t in tasks}
    assert after[target] - before[target] >= 8  # 10.9 points (one training prompt per class)
    others = [n for n in before if n != target]
    assert sum(after[n] < before[n] for n in others) >= len(others) / 2


def test_finetuning_is_deterministic(make_method, small_task):
    a, b = make_method("finetune", steps=3), make_method("finetune", steps=3)
    sa = learn_task(a, small_task, seed=5, progress=False)
    sb = learn_task(b, small_task, seed=5, progress=False)
    assert sa == sb and sa.steps == 3
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)
