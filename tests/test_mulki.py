"""MulKI: prototypes, the stage losses, teacher weights, stage switches, weight integration."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from clviz.core import Observer, learn_task
from clviz.core.clip import image_features
from clviz.core.config import RunConfig, TrainConfig
from clviz.core.loop import draws_for
from clviz.experiments.runs import run
from clviz.methods.mulki import (
    class_means,
    prototype_contrastive_loss,
    relation_distribution,
    teacher_weights,
)
from clviz.methods.weights import WeightAverage, interpolate_

KEY = "visual.transformer.resblocks.0.mlp.c_fc.weight"


@pytest.fixture
def make(make_method):
    return lambda steps=2, **options: make_method("mulki", steps, **options)


def batch_loss(method, task, index=1):
    """The training loss on a fixed batch, on a method at the start of task ``index``."""
    state = method.begin_task(task, index, draws_for(0))
    torch.manual_seed(0)
    return method.loss(task.batch("train", torch.arange(16)), state), state


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


def test_weight_average_counts_the_start_as_the_first_sample_and_interpolation_is_linear():
    start, b, c = torch.full((3,), 3.0), torch.ones(3), torch.full((3,), 5.0)
    avg = WeightAverage([start])
    out = torch.full((3,), -1.0)
    avg.copy_to([out])
    torch.testing.assert_close(out, torch.full((3,), -1.0))  # nothing folded yet: no-op
    avg.fold([b])
    torch.testing.assert_close(avg.average[0], torch.full((3,), 2.0))  # (3 + 1) / 2, as ZSCL
    avg.fold([c])
    avg.copy_to([out])
    torch.testing.assert_close(out, torch.full((3,), 3.0))  # (3 + 1 + 5) / 3
    state = {"w": torch.full((2,), 4.0), "n": torch.tensor([7])}
    interpolate_(state, {"w": torch.zeros(2), "n": torch.tensor([1])}, 0.25)
    torch.testing.assert_close(state["w"], torch.full((2,), 1.0))
    assert state["n"].item() == 7  # integer buffers are never interpolated
    with pytest.raises(ValueError, match="alpha"):
        interpolate_(state, state, 1.5)


# ---------------------------------------------------------------- the method
def test_prototypes_start_at_the_initial_models_class_means(make, tiny, small_task, fmt):
    method, task = make(), fmt(small_task)
    learn_task(method, task, 0, progress=False)  # the student moves away from the initial model
    # ... but prototypes still come from the initial one
    state = method.begin_task(task, 1, draws_for(0))
    expected = class_means(
        image_features(tiny[0], small_task.train_images), small_task.train_labels, 8
    )
    torch.testing.assert_close(state.prototypes.detach(), expected)
    assert state.prototypes_param.requires_grad
    (stage,) = method.stages(state)
    assert any(p is state.prototypes_param for p in stage.params)


def test_teachers_stay_frozen_and_untouched(make, tiny, small_task, fmt):
    method, task = make(steps=3), fmt(small_task)
    learn_task(method, task, 0, progress=False)
    seen = {}

    class Spy(Observer):
        def on_task_start(self, method, state):
            seen["teachers"] = state.teachers
            seen["before"] = [copy.deepcopy(t.state_dict()) for t in state.teachers]

    learn_task(method, task, 1, seed=1, observers=[Spy()], progress=False)
    assert len(seen["teachers"]) == 2
    for t, b in zip(seen["teachers"], seen["before"], strict=True):
        assert not any(p.requires_grad for p in t.parameters()) and not t.training
        for k, v in t.state_dict().items():
            assert torch.equal(v, b[k]), k
    torch.testing.assert_close(method.initial.state_dict()[KEY], tiny[0].state_dict()[KEY])


def test_each_stage_switch_changes_the_loss_and_off_means_off(make, small_task, fmt):
    task = fmt(small_task)
    full = batch_loss(make(), task, 0)[0].item()
    for stage in ("elicit", "add"):
        assert batch_loss(make(**{stage: False}), task, 0)[0].item() != pytest.approx(full)
    # stage 2 off and stage 1 off: exactly the shared classification loss
    method = make(elicit=False, add=False)
    loss, state = batch_loss(method, task, 0)
    plain = method.task_loss(task.batch("train", torch.arange(16)), task)
    torch.testing.assert_close(loss, plain)
    (stage,) = method.stages(state)
    assert not any(p is state.prototypes_param for p in stage.params)


def test_stage_three_reweights_and_off_gives_halves(make, small_task, fmt):
    task = fmt(small_task)
    sharp = make()
    for method in (sharp, even := make(distinguish=False)):
        learn_task(method, task, 0, progress=False)
        learn_task(method, task, 1, seed=1, progress=False)
    w_sharp = sharp.records[1].teacher_weights
    w_even = even.records[1].teacher_weights
    assert w_even.quantiles == pytest.approx([0.5] * 5)
    assert w_sharp.quantiles[0] < w_sharp.quantiles[-1]  # per-sample, not constant
    assert sum(w_sharp.histogram) == w_sharp.count == 2 * 8


def test_stage_four_interpolates_with_the_previous_model_and_off_means_off(make, tiny, small_task):
    start = tiny[0].state_dict()[KEY]
    back = make(alpha=0.0)  # the interpolation returns exactly to the previous model
    learn_task(back, small_task, progress=False)
    torch.testing.assert_close(back.model.state_dict()[KEY], start)
    off = make(alpha=0.0, connect=False)
    learn_task(off, small_task, progress=False)
    assert not torch.equal(off.model.state_dict()[KEY], start)


def test_record_is_json_ready_with_weights_alignment_and_gap(make, small_task, fmt):
    """The alignment and gap numbers, recomputed by hand on the model before the task and on
    the model it ends with: the cosine of each class's mean image with its class text, and
    the distance between the image and text centroids. The prototypes start as the initial
    model's class means, so at the start the two alignments are one number."""
    from clviz.core.clip import class_embeddings

    method, task = make(), fmt(small_task)
    initial = copy.deepcopy(method.model)
    learn_task(method, task, 0, progress=False)
    record = json.loads(json.dumps(method.record([task]).to_dict()))
    first = record["tasks"][0]
    for key in ("prototype_text_before", "prototype_text_after", "modality_gap_after"):
        assert isinstance(first[key], float)
    assert first["teacher_weights"]["quantiles"] == pytest.approx([0.5] * 5)  # first task
    tokens = task.for_training(method.train_config.prompts).prompt_tokens
    labels, classes = task.train_labels, range(task.num_classes)

    def alignment_and_gap(model):
        with torch.no_grad():
            text = class_embeddings(model, tokens, task.num_classes)
            feats = image_features(model, task.images("train"))
        means = torch.stack([F.normalize(feats[labels == c].mean(0), dim=0) for c in classes])
        cosine = (means * text).sum(-1).mean().item()
        return cosine, (feats.double().mean(0) - text.double().mean(0)).norm().item()

    start, gap = alignment_and_gap(initial)
    assert first["class_mean_text_before"] == pytest.approx(start, abs=1e-5)
    assert first["prototype_text_before"] == pytest.approx(start, abs=1e-5)
    assert first["modality_gap_before"] == pytest.approx(gap, abs=1e-5)
    end, gap_after = alignment_and_gap(method.model)
    assert first["class_mean_text_after"] == pytest.approx(end, abs=1e-5)
    assert first["modality_gap_after"] == pytest.approx(gap_after, abs=1e-5)
    assert (end, gap_after) != pytest.approx((start, gap), abs=1e-5)  # trained in between


def test_bad_options_name_the_problem(make):
    with pytest.raises(ValueError, match="prototype_update must be one of"):
        make(prototype_update="ema")
    with pytest.raises(ValueError, match="alpha must be in"):
        make(alpha=2.0)


def test_momentum_prototypes_move_without_gradients(make, small_task, fmt):
    method, task = make(prototype_update="momentum"), fmt(small_task)
    seen = {}

    class Spy(Observer):
        def on_task_start(self, method, state):
            seen["start"] = state.prototypes.detach().clone()
            (stage,) = method.stages(state)
            seen["trains"] = any(p is state.prototypes_param for p in stage.params)

        def on_task_trained(self, method, state):
            seen["end"] = state.prototypes.detach().clone()

    learn_task(method, task, observers=[Spy()], progress=False)
    assert not seen["trains"]
    assert not torch.allclose(seen["end"], seen["start"])


def test_resume_gives_the_same_matrix_and_record(tmp_path):
    from test_loop import crash_at

    config = RunConfig(
        method="mulki", stream="smoke", seed=1, train=TrainConfig(steps=3, batch_size=8)
    )
    whole = run(config, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "cut", progress=False, observers=[crash_at(2)])
    resumed = run(config, tmp_path / "cut", progress=False)
    assert resumed.matrix == whole.matrix
    assert resumed.record == whole.record
