"""MoE-Adapters: identity at start, batched experts, routers, activate-freeze, accounting."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import predict

from clviz.core import Observer, learn_task
from clviz.core.clip import class_embeddings, image_features
from clviz.core.config import RunConfig, TrainConfig
from clviz.core.evaluation import EveryTask
from clviz.core.formats import Batch, make_format
from clviz.core.loop import draws_for
from clviz.experiments.runs import load_trained, run
from clviz.methods.moe import ExpertPool, NoisyTopKRouter
from clviz.methods.moe.choices import router_choices
from clviz.methods.moe.router import cv_squared
from clviz.methods.sites import use_task
from clviz.world import get_stream, make_task


@pytest.fixture
def moe_method(make_method):
    return lambda steps=3, **options: make_method(
        "moe-adapters-taskid", steps, **{"experts": 6, **options}
    )


def test_adapted_model_starts_identical_to_the_backbone(moe_method, tiny, small_task, fmt):
    method = moe_method()
    method.add_router()
    task = fmt(small_task)
    assert len(method.layers) == 8  # 4 image + 4 text blocks
    with use_task(method.layers.values(), 0):
        images = image_features(method.model, small_task.test_images[:8])
        text = class_embeddings(method.model, task.prompt_tokens, task.num_classes)
    assert torch.equal(images, image_features(tiny[0], small_task.test_images[:8]))
    assert torch.equal(text, class_embeddings(tiny[0], task.prompt_tokens, task.num_classes))


def test_batched_experts_equal_the_per_sample_sum():
    torch.manual_seed(0)
    pool = ExpertPool(width=16, num_experts=5, bottleneck=4).eval()
    for expert in pool.experts:  # give the zero-initialised up-projections some weight
        torch.nn.init.normal_(expert.up.weight)
    x = torch.randn(3, 7, 16)
    index = torch.tensor([[0, 4], [2, 2], [3, 1]])
    gates = torch.tensor([[0.7, 0.3], [0.5, 0.5], [0.1, 0.9]])
    expected = torch.stack(
        [
            sum(gates[n, j] * pool.experts[int(index[n, j])](x[n]) for j in range(2))
            for n in range(3)
        ]
    )
    torch.testing.assert_close(pool(x, index, gates), expected)


def test_router_picks_k_experts_with_noise_only_in_training():
    torch.manual_seed(0)
    router = NoisyTopKRouter(width=8, num_experts=6, top_k=2)
    router.add_task()
    torch.nn.init.normal_(router.gates[0])
    torch.nn.init.normal_(router.noise[0])
    x, task = torch.randn(5, 8), torch.zeros(5, dtype=torch.long)
    router.eval()
    index, gates, dense, _ = router(x, task)
    assert index.shape == (5, 2) and torch.allclose(gates.sum(-1), torch.ones(5))
    assert torch.equal(router(x, task)[0], index), "no noise at evaluation"
    one = router(x, 0)  # one router for every sample: a single product, the same routing
    assert torch.equal(one[0], index) and torch.allclose(one[1], gates)
    assert torch.equal((dense > 0).sum(-1), torch.full((5,), 2))
    router.train()
    noisy = [router(x, task)[2] for _ in range(3)]
    assert not torch.equal(noisy[0], noisy[1]) or not torch.equal(noisy[1], noisy[2])
    with pytest.raises(ValueError, match="top_k must be between 1"):
        NoisyTopKRouter(8, 3, top_k=4)


def test_activate_freeze(moe_method, fmt):
    first = fmt(make_task("shapes", train_per_class=4, test_per_class=1))
    second = fmt(make_task("colors", train_per_class=4, test_per_class=1))
    method = moe_method(freeze_per_task=2)
    backbone = {k: v.clone() for k, v in method.model.state_dict().items() if ".sites." not in k}
    learn_task(method, first, 0, seed=0, progress=False)
    block = "visual.transformer.resblocks.1"
    frozen = sorted(method.frozen[block])
    counts = method.selections[0][block]
    assert len(frozen) == 2 and min(counts[e] for e in frozen) >= max(
        c for e, c in enumerate(counts) if e not in frozen
    )
    layer = method.layers[block]
    before = {e: copy.deepcopy(layer.experts.experts[e].state_dict()) for e in frozen}
    router0 = layer.router.gates[0].detach().clone()

    class Check(Observer):  # what trains while the second task is learned
        def on_task_start(self, method, state):
            for e, expert in enumerate(layer.experts.experts):
                assert all(p.requires_grad == (e not in frozen) for p in expert.parameters())
            assert not layer.router.gates[0].requires_grad and layer.router.gates[1].requires_grad
            assert not any(
                p.requires_grad for n, p in method.model.named_parameters() if ".sites." not in n
            )

    learn_task(method, second, 1, seed=1, observers=[Check()], progress=False)
    for e in frozen:
        for k, v in layer.experts.experts[e].state_dict().items():
            assert torch.equal(v, before[e][k]), f"frozen expert {e} moved ({k})"
    assert torch.equal(layer.router.gates[0], router0)
    for k, v in method.model.state_dict().items():
        if k in backbone:
            assert torch.equal(v, backbone[k]), f"backbone weight {k} moved"
    assert len(method.frozen_history) == 2 and set(frozen) <= set(method.frozen_history[1][block])
    assert method.routers == ["shapes", "colors"]


def test_unlearned_tasks_take_the_newest_router(moe_method, fmt):
    method = moe_method(steps=1)
    tasks = [fmt(make_task(n, train_per_class=4, test_per_class=1)) for n in ("shapes", "colors")]
    for i, task in enumerate(tasks):
        learn_task(method, task, i, seed=i, progress=False)
    unseen = fmt(make_task("digits", train_per_class=1, test_per_class=1))
    assert [method.router_for(t) for t in (*tasks, unseen)] == [0, 1, 1]


def test_one_router_learns_every_task_without_freezing(moe_method, fmt, make_method):
    """The reference's class-incremental variant: router 0 trains on every task and all
    experts keep learning (no activate-freeze)."""
    method = moe_method(steps=2, experts=2, top_k=2, freeze_per_task=0, one_router=True)
    layer = method.layers["visual.transformer.resblocks.1"]
    tasks = [fmt(make_task(n, train_per_class=4, test_per_class=1)) for n in ("shapes", "colors")]
    learn_task(method, tasks[0], 0, seed=0, progress=False)
    after_first = [p.detach().clone() for p in (layer.router.gates[0], *layer.parameters())]
    learn_task(method, tasks[1], 1, seed=1, progress=False)
    assert len(layer.router.gates) == 1 and method.routers == ["shapes"]
    assert [method.router_for(t) for t in tasks] == [0, 0]
    assert method.frozen[layer_name := "visual.transformer.resblocks.1"] == set()
    assert method.frozen_history[-1][layer_name] == []
    assert not torch.equal(layer.router.gates[0], after_first[0])  # the task-2 loss moved it
    assert all(e.up.weight.requires_grad for e in layer.experts.experts)
    with pytest.raises(ValueError, match="moe-adapters-taskid with one_router"):
        make_method("moe-adapters", 1, one_router=True)


def test_checkpoint_round_trip_predicts_the_same(moe_method, fmt):
    task = fmt(make_task("shapes", train_per_class=4, test_per_class=2))
    method = moe_method()
    learn_task(method, task, 0, seed=0, progress=False)
    restored = moe_method()
    restored.load_state_dict(method.state_dict())
    torch.testing.assert_close(predict(restored, task, 6), predict(method, task, 6))
    assert restored.frozen == method.frozen and restored.routers == method.routers


def test_paper_parameter_count_by_construction():
    from clviz.params import count_parameters

    counts = count_parameters(
        "ViT-B-16", "moe-adapters-taskid", experts=22, bottleneck=64, tasks=11
    )
    in_millions = {
        k: round(counts[k] / 1e6, 2)
        for k in (
            "image_experts",
            "text_experts",
            "image_routers",
            "text_routers",
            "trainable",
            "full_finetune",
        )
    }
    assert in_millions == {
        "image_experts": 26.17,
        "text_experts": 17.45,
        "image_routers": 4.46,
        "text_routers": 2.97,
        "trainable": 51.06,
        "full_finetune": 149.62,
    }


def test_cv_squared():
    assert cv_squared(torch.ones(4)) == 0
    assert cv_squared(torch.tensor([4.0, 0.0])) > 0


def test_balance_loss_is_off_by_default_and_switchable(moe_method, fmt):
    task = fmt(make_task("shapes", train_per_class=4, test_per_class=1))
    off, on = moe_method(), moe_method(balance_loss=True)
    batch = task.batch("train", torch.arange(8))
    losses = []
    for method in (off, on):
        state = method.begin_task(task, 0, draws_for(0))
        torch.manual_seed(0)
        with method.context(task):
            losses.append(method.loss(batch, state))
    aux = sum(layer.aux_loss for layer in on.layers.values())
    assert aux > 0
    torch.testing.assert_close(losses[1], losses[0] + aux)
    assert isinstance(batch, Batch) and len(batch) == 8


def test_moe_run_is_deterministic(tmp_path):
    config = RunConfig(
        method="moe-adapters-taskid",
        stream="smoke",
        seed=1,
        train=TrainConfig(steps=3, batch_size=8),
        options={"experts": 4},
    )
    a = run(config, tmp_path / "a", progress=False)
    b = run(config, tmp_path / "b", progress=False)
    assert a.matrix == b.matrix and a.record == b.record


def test_text_routers_make_one_choice_per_task_image_routers_do_not(moe_method, small_task):
    method = moe_method()
    method.add_router()
    generator = torch.Generator().manual_seed(0)
    for layer in method.layers.values():  # a router that has learned something
        layer.router.gates[0].data.normal_(generator=generator)
    prompts = [small_task.prompts(c)[0] for c in range(small_task.num_classes)] + ["zzz qq"]
    by_prompt = router_choices(method, 0, prompts=prompts)
    by_image = router_choices(method, 0, images=small_task.test_images)
    assert all(len({tuple(r) for r in v.tolist()}) == 1 for v in by_prompt.values())
    assert max(len({tuple(r) for r in v.tolist()}) for v in by_image.values()) > 1
    assert all(v.shape == (len(prompts), 2) for v in by_prompt.values())
    with pytest.raises(ValueError, match="images or prompts"):
        router_choices(method, 0)
    with pytest.raises(ValueError, match="router 1 does not exist"):
        router_choices(method, 1, prompts=prompts)


def test_a_finished_run_loads_back_as_it_ended(tmp_path):
    config = RunConfig("moe-adapters-taskid", stream="smoke", train=TrainConfig(steps=2))
    result = run(config, tmp_path, progress=False)
    method = load_trained(result)
    tasks = [make_format(t, method.tokenizer) for t in get_stream("smoke")]
    assert EveryTask(tasks).row(method, len(tasks) - 1) == result.matrix[-1]
    assert RunConfig.from_dict(result.config).as_dict() == result.config
