"""The method registry, the shared contract, and what each baseline does to the weights."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import predict

from clviz.core import Observer, learn_task, make_format, run_stream
from clviz.core.clip import embed_images, encode_texts
from clviz.core.loop import draws_for
from clviz.methods import METHODS, build_method, get_method, make_options


def test_registry_names_every_baseline():
    assert {"zero-shot", "finetune", "lwf", "wise-ft", "zscl"} <= set(METHODS)
    with pytest.raises(ValueError, match="valid methods: zero-shot"):
        get_method("ewc")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid options: alpha"):
        make_options(get_method("wise-ft"), {"beta": 1})


def test_zero_shot_never_changes(make_method, small_task):
    method = make_method("zero-shot")
    before = copy.deepcopy(method.model.state_dict())
    assert learn_task(method, small_task, progress=False).steps == 0
    for k, v in method.model.state_dict().items():
        assert torch.equal(v, before[k])


def test_wise_ft_lands_halfway(make_method, tiny, small_task):
    ft, wise = make_method("finetune"), make_method("wise-ft", alpha=0.5)
    start = copy.deepcopy(wise.model.state_dict())
    learn_task(ft, small_task, progress=False)
    learn_task(wise, small_task, progress=False)
    key = "visual.transformer.resblocks.0.mlp.c_fc.weight"
    expected = 0.5 * start[key] + 0.5 * ft.model.state_dict()[key]
    torch.testing.assert_close(wise.model.state_dict()[key], expected)


def test_wise_ft_defaults_to_zscls_alpha(make_method, small_task):
    wise = make_method("wise-ft")
    assert wise.options.alpha == 0.8
    start = copy.deepcopy(wise.model.state_dict())
    ft = make_method("finetune")
    learn_task(ft, small_task, progress=False)
    learn_task(wise, small_task, progress=False)
    key = "visual.proj"
    expected = 0.2 * start[key] + 0.8 * ft.model.state_dict()[key]  # alpha * q + (1 - alpha) * k
    torch.testing.assert_close(wise.model.state_dict()[key], expected)


def test_lwf_distils_the_previous_model_both_ways_from_the_first_task(make_method, small_task, fmt):
    """At the start of a task the student is its teacher, so each distillation term is the
    teacher's own tempered entropy (times T^2), image -> text over the classes and text ->
    image over the reference batch, with the teacher's single-template class texts."""
    method = make_method("lwf")
    task = fmt(small_task)
    # task 1: the pretrained teacher
    state = method.begin_task(task.for_training("first"), 0, draws_for(0))
    batch = task.batch("train", torch.arange(8))
    draws = torch.Generator().manual_seed(int(state.draws.initial_seed()))
    total = method.loss(batch, state)
    plain = method.task_loss(batch, state.task)
    index = torch.randint(task.size("train"), (8,), generator=draws)
    prompts = [small_task.prompts(c)[0] for c in range(task.num_classes)]
    with torch.no_grad():
        text = encode_texts(method.model, method.tokenizer(prompts))
        image = embed_images(method.model, task.images("train")[index])
        logits = method.model.logit_scale.exp() * image @ text.T

    def entropy_t2(z):  # T^2 x mean cross-entropy of softmax(z / T) with itself, T = 2
        p = torch.softmax(z / 2, dim=-1)
        return -(p * torch.log_softmax(z / 2, dim=-1)).sum(-1).mean() * 4

    expected = plain + entropy_t2(logits) + entropy_t2(logits.T)
    torch.testing.assert_close(total, expected, rtol=1e-4, atol=1e-4)


def test_zscl_ends_the_task_on_its_weight_ensemble(make_method, small_task):
    """Training moves the weights; the task ends on the running average of the steps' weights,
    not on the last step's (the penalty: the next test)."""
    method = make_method("zscl", steps=3, we_every=1, reference_images=64, reference_texts=32)
    start = copy.deepcopy(method.model.state_dict())
    seen = {}

    class Spy(Observer):
        def on_task_trained(self, method, state):
            seen["trained"] = copy.deepcopy(method.model.state_dict())
            seen["ensemble"] = [p.clone() for p in state.ensemble.average]

    learn_task(method, small_task, observers=[Spy()], progress=False)
    key = "visual.proj"
    trained = seen["trained"]
    assert not torch.equal(trained[key], start[key])
    names = [n for n, _ in method.model.named_parameters() if n != "logit_scale"]
    torch.testing.assert_close(method.model.state_dict()[key], seen["ensemble"][names.index(key)])
    assert not torch.equal(method.model.state_dict()[key], trained[key])  # the average


def test_zscl_l2_penalty_is_the_squared_distance_to_the_task_start(make_method, small_task, fmt):
    """The penalty is ``l2`` times the summed squared distance to the weights at the start of
    the task: nothing at the start, and two weights moved by 0.3 and -0.2 add
    ``l2 * (0.09 + 0.04)`` to the loss of the same batch with the same reference draws. The
    next task anchors on the moved weights, not the pretrained ones."""
    task = fmt(small_task)
    batch = task.batch("train", torch.arange(8))
    small = {"reference_images": 64, "reference_texts": 32}

    def loss(l2: float, moved: bool, next_task: bool = False) -> float:
        method = make_method("zscl", l2=l2, **small)
        state = method.begin_task(task.for_training("first"), 0, draws_for(0))
        if moved:
            params = dict(method.model.named_parameters())
            with torch.no_grad():
                params["visual.proj"][0, 0] += 0.3
                params["transformer.resblocks.0.mlp.c_fc.bias"][3] -= 0.2
        if next_task:
            state = method.begin_task(task.for_training("first"), 1, draws_for(0))
        with torch.no_grad():
            return float(method.loss(batch, state))

    assert loss(1.0, moved=False) == pytest.approx(loss(0.0, moved=False), abs=1e-6)
    plain = loss(0.0, moved=True)
    assert loss(1.0, moved=True) - plain == pytest.approx(0.13, abs=1e-4)
    assert loss(2.5, moved=True) - plain == pytest.approx(2.5 * 0.13, abs=1e-4)
    assert loss(1.0, moved=True, next_task=True) == pytest.approx(plain, abs=1e-6)


@pytest.mark.parametrize("name", [m for m in METHODS if m != "moe-adapters"])
def test_predictions_come_from_the_embeddings_the_drift_analysis_reads(
    name, make_method, small_task, fmt
):
    """What a method predicts is its image embeddings against its text embeddings (times the
    logit scale), so the features the drift analysis records are the ones the accuracy matrix
    measured. (With DDAS the text side follows each image's chosen router, so ``moe-adapters``
    is left out.)"""
    method = make_method(name, steps=1)
    task = fmt(small_task)
    learn_task(method, task, progress=False)
    images = task.images("test")[:6]
    expected = method.image_embeddings(images, task) @ method.text_embeddings(task).T
    scale = method.model.logit_scale.exp()
    assert torch.allclose(predict(method, task, 6), scale * expected, atol=1e-4)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_starts_as_its_backbone(name, tiny, small_task, fmt):
    """Before its first task a method predicts exactly what the untouched backbone does: the
    loop measures the zero-shot row on the method itself when no cached row is given."""
    task = fmt(small_task)
    method = build_method(name, copy.deepcopy(tiny[0]), tiny[2])
    backbone = build_method("zero-shot", copy.deepcopy(tiny[0]), tiny[2])
    assert torch.equal(predict(method, task), predict(backbone, task))
    assert torch.equal(
        method.image_embeddings(task.images("test"), task),
        backbone.image_embeddings(task.images("test"), task),
    )


def test_classification_methods_refuse_other_formats(make_method, tiny):
    from clviz.world import make_pair_task

    pair = make_format(make_pair_task("topics", train_per_class=2, test_per_class=1), tiny[2])
    with pytest.raises(ValueError, match="learns image classification tasks only"):
        learn_task(make_method("lwf"), pair, progress=False)


def test_finetune_learns_every_format_with_its_head(make_method, tiny):
    from clviz.world import make_pair_task

    pair = make_format(make_pair_task("matching", train_per_class=4, test_per_class=2), tiny[2])
    method = make_method("finetune", steps=2)
    result = run_stream(method, [pair], progress=False)
    assert "matching" in method.heads and result.zero_shot == [None]
    right = predict(method, pair).argmax(-1) == pair.test_labels  # every test pair, by hand
    assert len(result.matrix) == 1
    assert result.matrix[0][0] == pytest.approx(100.0 * right.float().mean().item())
