"""Class-incremental protocol: class order, steps, union evaluation, Avg / Last, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clviz.core.config import RunConfig, TrainConfig
from clviz.core.store import RunDirError
from clviz.data.fake import make_fake_mtil
from clviz.experiments.class_incremental import (
    CIFAR100_ORDER,
    build_steps,
    cifar100_pool,
    run_class_incremental,
    split_classes,
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


def test_finetune_learns_the_current_step(tmp_path):
    config = RunConfig("finetune", stream="smoke", train=TrainConfig(steps=2, batch_size=8))
    result = run_class_incremental(
        config, "world", 2, tmp_path / "ft", progress=False, test_per_class=2
    )
    accuracy = [row[0] for row in result.matrix]
    assert len(accuracy) == 2 and result.task_stats[0].steps == 2
    assert all(0.0 <= a <= 100.0 for a in accuracy)
    assert accuracy != result.zero_shot  # training changed the model
