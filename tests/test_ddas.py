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
        chosen = method.ddas.select(method.generic_features.compute(task.images("test")))
        right = ((chosen.task == index) & ~chosen.ood).float().mean().item()
        assert right >= 0.7, f"{task.name}: only {right:.0%} routed to its own router"


def test_unlearned_domain_goes_to_the_backbone(trained, tiny, fmt):
    method, _ = trained
    colors = fmt(make_task("colors", train_per_class=2, test_per_class=8))
    ood = method.ddas.select(method.generic_features.compute(colors.images("test"))).ood
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
    feats = method.generic_features.compute(tasks[1].images("test")[:10])
    chosen = method.ddas.select(feats, per_batch=True)
    assert len(set(chosen.task.tolist())) == 1 and len(set(chosen.ood.tolist())) == 1
    assert chosen.task[0] == 1


def test_record_reports_every_mode_and_both_mechanisms(trained):
    method, tasks = trained
    record = method.record(tasks)
    assert set(record.ddas) == {"per_sample", "per_batch", "per_batch_reference"}
    report = record.ddas["per_sample"]
    assert report.learned == ["shapes", "digits"] and len(report.confusion) == 2
    for i, t in enumerate(tasks):  # correct: its own router and not the backbone, by hand
        chosen = method.ddas.select(method.generic_features.compute(t.images("test")))
        right = ((chosen.task == i) & ~chosen.ood).float().mean().item()
        own = report.confusion[i][i] / t.size("test")  # the own router's column
        assert report.correct[t.name] == pytest.approx(100.0 * right)
        assert report.correct[t.name] == pytest.approx(100.0 * own)
    assert record.ddas["per_batch_reference"].threshold == 0.0655  # the reference's hand-set one
    for t in tasks:  # the backbone column is the sum of the two mechanisms
        n = len(report.best_errors[t.name])
        backbone = report.confusion[tasks.index(t)][-1]
        shares = report.by_generic[t.name] + report.by_threshold[t.name]
        assert shares == pytest.approx(100.0 * backbone / n)
        assert len(report.generic_errors[t.name]) == n


def test_generic_autoencoder_learns_the_pretraining_corpus(trained):
    """It is fitted once, before the first task's, on generic images, and wins on them."""
    method, _ = trained
    assert method.ddas.generic is not None and len(method.ddas) == 2
    corpus = method.reference.images[:64]
    chosen = method.ddas.select(method.generic_features.compute(corpus))
    assert chosen.generic.float().mean() >= 0.5  # most generic images are sent by it


def test_selection_rule_by_hand():
    """Errors of four images under two task autoencoders and the generic one, threshold 0.5:
    a generic win (also on a tie, as the reference's index 0) or a winning error above the
    threshold sends the image to the backbone."""
    ddas = DDAS()
    ddas.threshold.fill_(0.5)
    errors = torch.tensor([[0.2, 0.3], [0.6, 0.7], [0.4, 0.1], [0.3, 0.9]])
    generic = torch.tensor([0.9, 0.8, 0.05, 0.3])
    chosen = ddas.select_from_errors(errors, generic)
    assert chosen.task.tolist() == [0, 0, 1, 0]
    assert chosen.generic.tolist() == [False, False, True, True]  # 0.05 < 0.1; 0.3 ties 0.3
    assert chosen.threshold.tolist() == [False, True, False, False]  # 0.6 > 0.5
    assert chosen.ood.tolist() == [False, True, True, True]
    fixed = ddas.select_from_errors(errors, generic, threshold=0.65)
    assert fixed.threshold.tolist() == [False, False, False, False]
    # per batch: mean task errors (0.375, 0.5), mean generic 0.5125 -> task 0, in distribution
    batch = ddas.select_from_errors(errors, generic, per_batch=True)
    assert batch.task.tolist() == [0] * 4 and not batch.ood.any()
    assert ddas.select_from_errors(errors, generic, per_batch=True, threshold=0.3).ood.all()
    # without a generic autoencoder only the threshold sends images away
    assert ddas.select_from_errors(errors).ood.tolist() == [False, True, False, False]


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
