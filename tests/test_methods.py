"""The method registry and what each baseline does to the weights."""

from __future__ import annotations

import copy

import pytest
import torch
from method_helpers import learn, make_method

from clviz.methods import METHODS, get_method, make_options


def make(name, tiny, steps=2, **options):
    return make_method(name, tiny, steps, **options)


def test_registry_names_every_baseline():
    assert {"zero-shot", "finetune", "lwf", "wise-ft", "zscl"} <= set(METHODS)
    with pytest.raises(ValueError, match="valid methods: zero-shot"):
        get_method("ewc")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid options: alpha"):
        make_options(get_method("wise-ft"), {"beta": 1})


def test_zero_shot_never_changes(tiny, small_task):
    method = make("zero-shot", tiny)
    before = copy.deepcopy(method.model.state_dict())
    assert learn(method, small_task) == {"steps": 0}
    for k, v in method.model.state_dict().items():
        assert torch.equal(v, before[k])


def test_wise_ft_lands_halfway(tiny, small_task):
    ft, wise = make("finetune", tiny), make("wise-ft", tiny, alpha=0.5)
    start = copy.deepcopy(wise.model.state_dict())
    learn(ft, small_task)
    learn(wise, small_task)
    key = "visual.transformer.resblocks.0.mlp.c_fc.weight"
    expected = 0.5 * start[key] + 0.5 * ft.model.state_dict()[key]
    torch.testing.assert_close(wise.model.state_dict()[key], expected)


def test_lwf_distils_only_from_the_second_task(tiny, small_task):
    from clviz.world import make_task

    method = make("lwf", tiny)
    method.begin_task(small_task, 0)
    assert method._teacher is None
    method.train_task(small_task, 0, torch.Generator().manual_seed(0), progress=False)
    method.finish_task(small_task, 0)
    second = make_task("colors", train_per_class=4, test_per_class=2)
    method.begin_task(second, 1)
    method._tokens = method.tokenizer([p for c in range(8) for p in second.prompts(c)])
    x, y = second.train_images[:8], second.train_labels[:8]
    total = method.loss(x, y, second)
    plain = method.task_loss(method.encode_images(x), y, second)
    assert total.item() > plain.item()


def test_zscl_ensemble_and_penalty(tiny, small_task):
    method = make("zscl", tiny, steps=3, we_every=1, reference_images=64, reference_texts=32)
    start = copy.deepcopy(method.model.state_dict())
    method.begin_task(small_task, 0)
    method.train_task(small_task, 0, torch.Generator().manual_seed(0), progress=False)
    trained = copy.deepcopy(method.model.state_dict())
    ensemble = [p.clone() for p in method._ensemble]
    method.finish_task(small_task, 0)
    key = "visual.proj"
    assert not torch.equal(trained[key], start[key])
    names = [n for n, _ in method.model.named_parameters() if n != "logit_scale"]
    torch.testing.assert_close(method.model.state_dict()[key], ensemble[names.index(key)])
    assert not torch.equal(
        method.model.state_dict()[key], trained[key]
    )  # the average, not the last


@pytest.mark.parametrize("name", [m for m in METHODS if m != "moe-adapters"])
def test_predictions_come_from_the_embeddings_the_drift_analysis_reads(name, tiny, small_task):
    """What a method predicts is its image embeddings against its text embeddings, so the
    features the drift analysis records are the ones the accuracy matrix measured. (With DDAS
    the text side follows each image's chosen router, so ``moe-adapters`` is left out.)"""
    method = make(name, tiny, steps=1)
    learn(method, small_task)
    images = small_task.test_images[:6]
    expected = method.image_embeddings(images, small_task) @ method.text_embeddings(small_task).T
    assert torch.allclose(method.predict(images, small_task), expected, atol=1e-5)
