"""MulKI: prototypes, the stage losses, teacher weights, stage switches, weight integration."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from method_helpers import learn, make_method

from clviz.config import RunConfig
from clviz.engine import run
from clviz.methods import TrainConfig
from clviz.mulki import (
    WeightAverage,
    class_means,
    interpolate_,
    modality_gap,
    prototype_contrastive_loss,
    relation_distribution,
    teacher_weights,
)
from clviz.zeroshot import image_features, prompt_tokens

KEY = "visual.transformer.resblocks.0.mlp.c_fc.weight"


def make(tiny, steps=2, **options):
    return make_method("mulki", tiny, steps, **options)


def batch_loss(method, task, index=1):
    """The training loss on a fixed batch, on a method at the start of task ``index``."""
    method.begin_task(task, index)
    method._tokens = prompt_tokens(method.tokenizer, task)
    torch.manual_seed(0)
    return method.loss(task.train_images[:16], task.train_labels[:16], task)


# ---------------------------------------------------------------- pure functions
def test_class_means_are_normalised_means_and_need_every_class():
    feats = F.normalize(torch.randn(6, 4), dim=-1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    means = class_means(feats, labels, 3)
    torch.testing.assert_close(means[1], F.normalize(feats[2:5].mean(0), dim=0))
    torch.testing.assert_close(means.norm(dim=-1), torch.ones(3))
    with pytest.raises(ValueError, match=r"classes \[3\] have no sample"):
        class_means(feats, labels, 4)


def test_contrastive_loss_is_symmetric_and_lower_when_aligned():
    torch.manual_seed(0)
    text = F.normalize(torch.randn(5, 8), dim=-1)
    protos = F.normalize(torch.randn(5, 8), dim=-1)
    torch.testing.assert_close(
        prototype_contrastive_loss(protos, text, 10.0),
        prototype_contrastive_loss(text, protos, 10.0),
    )
    aligned = prototype_contrastive_loss(text + 0.05 * protos, text, 10.0)
    shuffled = prototype_contrastive_loss(text.roll(1, 0), text, 10.0)
    assert aligned < prototype_contrastive_loss(protos, text, 10.0) < shuffled


def test_relation_distributions_are_distributions():
    feats = F.normalize(torch.randn(7, 8), dim=-1)
    anchors = torch.randn(4, 8)
    p = relation_distribution(feats, anchors, 28.0, 2.0)
    assert p.shape == (7, 4) and (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(7))


def test_teacher_weights_lie_in_unit_interval_sum_to_one_and_follow_confidence():
    conf = torch.tensor([[0.9, 0.1], [0.2, 0.6], [0.0, 0.0], [0.5, 0.5]])
    w = teacher_weights(conf, 1.0)
    assert ((w >= 0) & (w <= 1)).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(4))
    assert w[0, 0] > 0.85 and w[1, 1] > 0.7
    torch.testing.assert_close(w[2], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(teacher_weights(conf, 0.0), torch.full((4, 2), 0.5))
    assert teacher_weights(conf, 4.0)[0, 0] > w[0, 0]  # sharper
    with pytest.raises(ValueError, match="N x K"):
        teacher_weights(torch.rand(3), 1.0)


def test_weight_average_is_the_mean_of_the_folds_and_interpolation_is_linear():
    a, b, c = torch.zeros(3), torch.ones(3), torch.full((3,), 5.0)
    avg = WeightAverage([a])
    for t in (a, b, c):
        avg.fold([t])
    out = torch.empty(3)
    avg.copy_to([out])
    torch.testing.assert_close(out, torch.full((3,), 2.0))
    state = {"w": torch.full((2,), 4.0), "n": torch.tensor([7])}
    interpolate_(state, {"w": torch.zeros(2), "n": torch.tensor([1])}, 0.25)
    torch.testing.assert_close(state["w"], torch.full((2,), 1.0))
    assert state["n"].item() == 7  # integer buffers are never interpolated
    with pytest.raises(ValueError, match="alpha"):
        interpolate_(state, state, 1.5)


def test_modality_gap_is_zero_for_identical_and_positive_for_shifted_clouds():
    x = F.normalize(torch.randn(10, 4), dim=-1)
    assert modality_gap(x, x) == pytest.approx(0.0, abs=1e-6)
    assert modality_gap(x + torch.tensor([3.0, 0, 0, 0]), x) > 0.1


# ---------------------------------------------------------------- the method
def test_prototypes_start_at_the_initial_models_class_means(tiny, small_task):
    method = make(tiny)
    learn(method, small_task, 0)  # the student moves away from the initial model ...
    method.begin_task(small_task, 1)  # ... but prototypes still come from the initial one
    expected = class_means(
        image_features(tiny[0], small_task.train_images), small_task.train_labels, 8
    )
    torch.testing.assert_close(method.prototypes.detach(), expected)
    assert method._prototypes.requires_grad
    assert any(p is method._prototypes for p in method.trainable_parameters())


def test_teachers_stay_frozen_and_untouched(tiny, small_task):
    method = make(tiny, steps=3)
    learn(method, small_task, 0)
    method.begin_task(small_task, 1)
    teachers = method._teachers
    assert len(teachers) == 2
    before = [copy.deepcopy(t.state_dict()) for t in teachers]
    method.train_task(small_task, 1, torch.Generator().manual_seed(1), progress=False)
    for t, b in zip(teachers, before, strict=True):
        assert not any(p.requires_grad for p in t.parameters()) and not t.training
        for k, v in t.state_dict().items():
            assert torch.equal(v, b[k]), k
    torch.testing.assert_close(method._initial.state_dict()[KEY], tiny[0].state_dict()[KEY])


def test_each_stage_switch_changes_the_loss_and_off_means_off(tiny, small_task):
    full = batch_loss(make(tiny), small_task, 0).item()
    for stage in ("elicit", "add"):
        assert batch_loss(make(tiny, **{stage: False}), small_task, 0).item() != pytest.approx(full)
    # stage 2 off and stage 1 off: exactly the shared classification loss
    method = make(tiny, elicit=False, add=False)
    loss = batch_loss(method, small_task, 0)
    plain = method.task_loss(
        method.encode_images(small_task.train_images[:16]), small_task.train_labels[:16], small_task
    )
    torch.testing.assert_close(loss, plain)
    assert not any(p is method._prototypes for p in method.trainable_parameters())


def test_stage_three_reweights_and_off_gives_halves(tiny, small_task):
    sharp = make(tiny)
    for method in (sharp, even := make(tiny, distinguish=False)):
        learn(method, small_task, 0)
        learn(method, small_task, 1, seed=1)
    w_sharp = sharp._records[1]["teacher_weights"]
    w_even = even._records[1]["teacher_weights"]
    assert w_even["quantiles"] == pytest.approx([0.5] * 5)
    assert w_sharp["quantiles"][0] < w_sharp["quantiles"][-1]  # per-sample, not constant
    assert sum(w_sharp["histogram"]) == w_sharp["count"] == 2 * 8


def test_stage_four_interpolates_with_the_previous_model_and_off_means_off(tiny, small_task):
    start = tiny[0].state_dict()[KEY]
    back = make(tiny, alpha=0.0)  # the interpolation returns exactly to the previous model
    learn(back, small_task)
    torch.testing.assert_close(back.model.state_dict()[KEY], start)
    off = make(tiny, alpha=0.0, connect=False)
    learn(off, small_task)
    assert not torch.equal(off.model.state_dict()[KEY], start)


def test_record_is_json_ready_with_weights_alignment_and_gap(tiny, small_task):
    import json

    method = make(tiny)
    learn(method, small_task, 0)
    record = json.loads(json.dumps(method.record([small_task])))
    task = record["tasks"][0]
    for key in ("prototype_text_before", "prototype_text_after", "modality_gap_after"):
        assert isinstance(task[key], float)
    assert task["teacher_weights"]["quantiles"] == pytest.approx([0.5] * 5)  # first task


def test_bad_options_name_the_problem(tiny):
    with pytest.raises(ValueError, match="prototype_update must be one of"):
        make(tiny, prototype_update="ema")
    with pytest.raises(ValueError, match="alpha must be in"):
        make(tiny, alpha=2.0)


def test_momentum_prototypes_move_without_gradients(tiny, small_task):
    method = make(tiny, prototype_update="momentum")
    method.begin_task(small_task, 0)
    start = method.prototypes.detach().clone()
    assert not any(p is method._prototypes for p in method.trainable_parameters())
    method.train_task(small_task, 0, torch.Generator().manual_seed(0), progress=False)
    assert not torch.allclose(method.prototypes, start)


def test_resume_gives_the_same_matrix(tmp_path):
    config = RunConfig(
        method="mulki", stream="smoke", seed=1, train=TrainConfig(steps=3, batch_size=8)
    )
    whole = run(config, tmp_path / "whole", progress=False)

    def crash(index, row):
        if index == 1:
            raise KeyboardInterrupt("simulated kill after task 2")

    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "cut", progress=False, on_task_end=crash)
    resumed = run(config, tmp_path / "cut", progress=False)
    assert resumed["accuracy_matrix"] == whole["accuracy_matrix"]
    assert resumed["record"] == whole["record"]
