"""Class-incremental protocol: class order, steps, union evaluation, Avg / Last, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import predict

from clviz.core.config import RunConfig, TrainConfig
from clviz.core.store import RunDirError
from clviz.data.fake import make_fake_mtil
from clviz.experiments.class_incremental import (
    CIFAR100_ORDER,
    REFERENCE,
    REFERENCE_TEMPLATE,
    Recipe,
    build_steps,
    cifar100_pool,
    load_pool,
    reference_config,
    run_class_incremental,
    split_classes,
    step_sizes,
    world_pool,
)


def test_cifar100_order_and_step_sizes():
    assert sorted(CIFAR100_ORDER) == list(range(100)) and CIFAR100_ORDER[:3] == (87, 0, 52)
    for steps, size in ((10, 10), (20, 5), (50, 2)):
        groups = split_classes(CIFAR100_ORDER, steps)
        assert len(groups) == steps and {len(g) for g in groups} == {size}
        assert [c for g in groups for c in g] == list(CIFAR100_ORDER)
    with pytest.raises(ValueError, match="steps must be between 1 and 100"):
        split_classes(CIFAR100_ORDER, 101)


def test_world_pool_and_steps():
    pool = world_pool("smoke", test_per_class=4)
    n = len(pool.classnames)
    assert n == 26 and len(set(pool.classnames)) == n
    assert len({len(t) for t in pool.templates}) == 1  # one template count for the union
    assert sorted(pool.order) == list(range(n))
    train, seen = build_steps(pool, 5)
    assert [t.num_classes for t in seen] == [6, 11, 16, 21, 26]
    assert sum(t.num_classes for t in train) == n
    for t, (step, union) in enumerate(zip(train, seen, strict=True)):
        assert set(step.classnames) <= set(union.classnames)
        assert union.classnames[: seen[t - 1].num_classes if t else 0] == (
            seen[t - 1].classnames if t else ()
        )
        assert int(step.train_labels.max()) < step.num_classes
        assert len(union.test_labels) == 4 * union.num_classes
        assert torch.equal(union.test_labels.unique(), torch.arange(union.num_classes))
    # each class keeps its own task's templates
    digit = seen[-1].classnames.index("3")
    assert seen[-1].prompts(digit)[0] == 'a photo of the number: "3".'


def test_cifar100_pool_from_fake_folder(tmp_path):
    root = make_fake_mtil(tmp_path, ["CIFAR100"], train_per_class=2, test_per_class=1)
    pool = cifar100_pool(str(root), image_size=16)
    train, seen = build_steps(pool, 10)
    assert train[0].classnames[0] == "class 087" and len(train[0].train_labels) == 20
    assert seen[-1].num_classes == 100 and len(seen[-1].test_labels) == 100
    assert train[0].train_images[torch.arange(3)].shape == (3, 3, 16, 16)


def test_zero_shot_run_matches_its_reference_and_is_cached(tmp_path):
    config = RunConfig("zero-shot", stream="smoke", train=TrainConfig(steps=0))
    out = tmp_path / "zs"
    result = run_class_incremental(config, "world", 3, out, progress=False, test_per_class=2)
    accuracy = [row[0] for row in result.matrix]
    assert accuracy == result.zero_shot  # an untouched model is its own reference
    assert result.protocol == "class-incremental" and result.columns == ["all classes seen so far"]
    assert result.extra["seen_classes"] == [9, 18, 26]
    assert result.metrics.avg == pytest.approx(np.mean(accuracy))
    assert result.metrics.last == accuracy[-1]
    again = run_class_incremental(config, "world", 3, out, progress=False, test_per_class=2)
    assert again == result  # reused from the run store
    other = RunConfig("finetune", stream="smoke", train=TrainConfig(steps=1))
    with pytest.raises(RunDirError, match="another run"):
        run_class_incremental(other, "world", 3, out, progress=False, test_per_class=2)


def test_finetune_learns_the_current_step(tmp_path, monkeypatch):
    """The last step's accuracy is the share of the test images of every class seen so far
    that the trained model classifies right among all of them (recomputed by hand)."""
    import clviz.experiments.class_incremental as ci

    seen = {}
    real_run_stream = ci.run_stream

    def spy(method, tasks, evaluation, **kwargs):
        seen.update(method=method, evaluation=evaluation)
        return real_run_stream(method, tasks, evaluation, **kwargs)

    monkeypatch.setattr(ci, "run_stream", spy)
    config = RunConfig("finetune", stream="smoke", train=TrainConfig(steps=2, batch_size=8))
    result = run_class_incremental(
        config, "world", 2, tmp_path / "ft", progress=False, test_per_class=2
    )
    accuracy = [row[0] for row in result.matrix]
    assert len(accuracy) == 2 and result.task_stats[0].steps == 2
    union = seen["evaluation"].seen[-1]  # every class of both steps, two test images each
    assert union.num_classes == result.extra["seen_classes"][-1] == len(result.extra["class_order"])
    assert torch.equal(union.test_labels.bincount(), torch.full((union.num_classes,), 2))
    with torch.no_grad():
        right = predict(seen["method"], union).argmax(-1) == union.test_labels
    assert accuracy[-1] == pytest.approx(100.0 * right.float().mean().item())
    assert accuracy != result.zero_shot  # training changed the model


def test_reference_recipe_one_epoch_one_template(tmp_path):
    """The reference cil/ recipe: ceil(images / batch) + 1 iterations per step, "a bad photo
    of a {}." for every class, and MoE-Adapters as one router over 2 experts, unfrozen."""
    assert Recipe(epochs=1).steps_for(448, 128) == 5  # 4 batches, then range(4 + 1)
    assert Recipe(epochs=2).steps_for(5000, 128) == 81  # CIFAR-100 in 10 steps: 2 * 40 + 1
    moe = reference_config("moe-adapters-taskid", stream="smoke")
    assert moe.method == "moe-adapters-taskid"
    assert moe.options == {
        "experts": 2, "top_k": 2, "freeze_per_task": 0, "one_router": True, "lr": 1e-3
    }  # fmt: skip
    assert moe.train.prompts == "first"  # no teaching setting in the reference recipe
    assert (moe.train.batch_size, moe.train.label_smoothing) == (128, 0.0)
    assert (moe.train.schedule, moe.train.warmup_steps) == ("cosine", 30)
    assert reference_config("finetune", stream="smoke").train.label_smoothing == 0.2
    assert reference_config("finetune", "mtil").train.lr == 7.1e-6
    ddas = reference_config("moe-adapters")  # clviz's extension: DDAS picks the router
    assert (ddas.method, ddas.options.get("one_router"), ddas.train.label_smoothing) == (
        "moe-adapters",
        None,
        0.0,
    )
    with pytest.raises(ValueError, match="no class-incremental reference recipe for 'lwf'"):
        reference_config("lwf")
    moe.train.batch_size = 8  # a small pool: 2 or 3 batches per step
    result = run_class_incremental(
        moe, "world", 2, tmp_path / "moe", recipe=REFERENCE, progress=False, test_per_class=2
    )
    pool = load_pool("world", moe, 2, REFERENCE_TEMPLATE)
    assert set(pool.templates) == {(REFERENCE_TEMPLATE,)}
    sizes = step_sizes(pool, 2)
    assert sum(sizes) == len(pool.train_labels)
    assert result.extra["iterations"] == [-(-n // 8) + 1 for n in sizes]
    assert [s.steps for s in result.task_stats] == result.extra["iterations"]
    assert result.extra["recipe"] == {"template": REFERENCE_TEMPLATE, "epochs": 1}
