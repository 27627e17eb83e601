"""DDAS: autoencoders tell learned tasks apart, send unfamiliar inputs to the backbone."""

from __future__ import annotations

import pytest
import torch
from helpers import predict

from clviz.core import accuracy, learn_task, make_format
from clviz.methods.moe.ddas import DDAS, selection_confusion
from clviz.methods.zeroshot import ZeroShot
from clviz.world import make_task


@pytest.fixture(scope="module")
def trained(tiny):
    """moe-adapters with DDAS after two tasks (shapes, digits); colors is never learned."""
    import copy

    from clviz.core.config import TrainConfig
    from clviz.methods import build_method

    model, _, tokenizer = tiny
    method = build_method(
        "moe-adapters",
        copy.deepcopy(model),
        tokenizer,
        TrainConfig(steps=2, batch_size=8),
        {"experts": 4, "ddas_steps": 150},
    )
    tasks = [
        make_format(make_task(n, train_per_class=24, test_per_class=8), tokenizer)
        for n in ("shapes", "digits")
    ]
    for i, task in enumerate(tasks):
        learn_task(method, task, i, seed=i, progress=False)
    return method, tasks


def test_selector_recognises_learned_tasks(trained):
    method, tasks = trained
    for index, task in enumerate(tasks):
        selected, ood = method.ddas.select(method.generic_features(task.images("test")))
        right = ((selected == index) & ~ood).float().mean().item()
        assert right >= 0.7, f"{task.name}: only {right:.0%} routed to its own router"


def test_unlearned_domain_goes_to_the_backbone(trained, tiny, fmt):
    method, _ = trained
    colors = fmt(make_task("colors", train_per_class=2, test_per_class=8))
    _, ood = method.ddas.select(method.generic_features(colors.images("test")))
    assert ood.float().mean() >= 0.8
    backbone = ZeroShot(tiny[0], tiny[2])
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
    feats = method.generic_features(tasks[1].images("test")[:10])
    selected, ood = method.ddas.select(feats, per_batch=True)
    assert len(set(selected.tolist())) == 1 and len(set(ood.tolist())) == 1
    assert selected[0] == 1


def test_record_reports_both_modes(trained):
    method, tasks = trained
    record = method.record(tasks)
    assert set(record.ddas) == {"per_sample", "per_batch"}
    report = record.ddas["per_sample"]
    assert report.learned == ["shapes", "digits"] and len(report.confusion) == 2
    assert all(0 <= report.correct[t.name] <= 100 for t in tasks)


def test_checkpoint_round_trip(trained, make_method):
    method, tasks = trained
    restored = make_method("moe-adapters", experts=4, ddas_steps=150)
    restored.load_state_dict(method.state_dict())
    torch.testing.assert_close(predict(restored, tasks[0], 6), predict(method, tasks[0], 6))
    assert float(restored.ddas.threshold) == float(method.ddas.threshold)


def test_confusion_counts():
    selected, ood = torch.tensor([0, 1, 1, 0]), torch.tensor([False, False, True, False])
    assert selection_confusion(selected, ood, 2).tolist() == [2, 1, 1]
    assert len(DDAS()) == 0
