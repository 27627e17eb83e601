"""Replay keeps a seeded memory per class and rehearses it; joint keeps everything."""

from __future__ import annotations

import torch

from clviz.core import learn_task
from clviz.core.loop import draws_for
from clviz.world import make_task


def test_replay_keeps_k_per_class_and_rehearses_them(make_method, fmt):
    tasks = [fmt(make_task(n, train_per_class=6, test_per_class=2)) for n in ("shapes", "digits")]
    method = make_method("replay", 2, memory_per_class=3)
    learn_task(method, tasks[0], 0, seed=0, progress=False)
    (memory,) = method.memory
    counts = torch.bincount(memory.labels, minlength=tasks[0].num_classes)
    assert memory.name == "shapes" and set(counts.tolist()) == {3}
    assert memory.tokens.shape[0] == tasks[0].num_classes  # one training prompt per class
    state = method.begin_task(tasks[1].for_training("first"), 1, draws_for(0))
    batch = tasks[1].batch("train", torch.arange(8))
    torch.manual_seed(0)
    with_memory = method.loss(batch, state)
    plain = method.task_loss(batch, state.task)
    assert not torch.isclose(with_memory, plain)  # the memory's loss is averaged in
    restored = make_method("replay", 2, memory_per_class=3)
    restored.load_state_dict(method.state_dict())
    assert torch.equal(restored.memory[0].images, memory.images)


def test_joint_keeps_every_image(make_method, fmt):
    task = fmt(make_task("shapes", train_per_class=5, test_per_class=2))
    method = make_method("joint", 1)
    learn_task(method, task, 0, seed=0, progress=False)
    assert len(method.memory[0].labels) == len(task.train_labels)
