"""DDAS: autoencoders tell learned tasks apart, send unfamiliar inputs to the backbone."""

from __future__ import annotations

import copy

import pytest
import torch

from clviz.methods import TrainConfig, get_method, make_options
from clviz.moe.ddas import DDAS, selection_confusion
from clviz.world import make_task


@pytest.fixture(scope="module")
def trained(tiny):
    """moe-adapters with DDAS after two tasks (shapes, digits); colors is never learned."""
    model, _, tokenizer = tiny
    cls = get_method("moe-adapters")
    method = cls(
        copy.deepcopy(model),
        tokenizer,
        TrainConfig(steps=2, batch_size=8),
        make_options(cls, {"experts": 4, "ddas_steps": 150}),
    )
    tasks = [make_task(n, train_per_class=24, test_per_class=8) for n in ("shapes", "digits")]
    for i, task in enumerate(tasks):
        method.begin_task(task, i)
        method.train_task(task, i, torch.Generator().manual_seed(i), progress=False)
        method.finish_task(task, i)
    return method, tasks


def test_selector_recognises_learned_tasks(trained):
    method, tasks = trained
    for index, task in enumerate(tasks):
        selected, ood = method.ddas.select(method.generic_features(task.test_images))
        right = ((selected == index) & ~ood).float().mean().item()
        assert right >= 0.7, f"{task.name}: only {right:.0%} routed to its own router"


def test_unlearned_domain_goes_to_the_backbone(trained, tiny):
    from clviz.engine import accuracy
    from clviz.methods.base import Method

    method, _ = trained
    colors = make_task("colors", train_per_class=2, test_per_class=8)
    _, ood = method.ddas.select(method.generic_features(colors.test_images))
    assert ood.float().mean() >= 0.8
    backbone = Method(tiny[0], tiny[2], TrainConfig())
    routed_elsewhere = 100 * (1 - ood.float().mean())
    assert abs(accuracy(method, colors) - accuracy(backbone, colors)) <= routed_elsewhere


def test_threshold_is_the_heldout_quantile(trained):
    method, _ = trained
    ddas = method.ddas
    best = torch.cat([ddas.errors(h).min(dim=1).values for h in ddas.heldout])
    assert float(ddas.threshold) == pytest.approx(torch.quantile(best, ddas.quantile).item())
    assert (best > ddas.threshold).float().mean() <= 1 - ddas.quantile + 0.05


def test_per_batch_mode_makes_one_decision(trained):
    method, tasks = trained
    feats = method.generic_features(tasks[1].test_images[:10])
    selected, ood = method.ddas.select(feats, per_batch=True)
    assert len(set(selected.tolist())) == 1 and len(set(ood.tolist())) == 1
    assert selected[0] == 1


def test_checkpoint_round_trip(trained, tiny):
    method, tasks = trained
    cls = get_method("moe-adapters")
    restored = cls(
        copy.deepcopy(tiny[0]),
        tiny[2],
        TrainConfig(),
        make_options(cls, {"experts": 4, "ddas_steps": 150}),
    )
    restored.load_state_dict(method.state_dict(), {t.name: t for t in tasks})
    x = tasks[0].test_images[:6]
    torch.testing.assert_close(restored.predict(x, tasks[0]), method.predict(x, tasks[0]))
    assert float(restored.ddas.threshold) == float(method.ddas.threshold)


def test_confusion_counts():
    selected, ood = torch.tensor([0, 1, 1, 0]), torch.tensor([False, False, True, False])
    assert selection_confusion(selected, ood, 2).tolist() == [2, 1, 1]
    assert len(DDAS()) == 0
