"""ATLAS sites and stages: shapes, alpha range, what trains in which stage."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import predict

from clviz.core import learn_task
from clviz.core.loop import draws_for, optimize
from clviz.methods.atlas import AtlasSite, attention_pool, ortho_penalty
from clviz.methods.sites import use_task
from clviz.world import make_pair_task, make_task


def small(name: str):
    return make_task(name, train_per_class=4, test_per_class=2)


def small_pair(kind: str):
    return make_pair_task(kind, train_per_class=4, test_per_class=2)


@pytest.fixture
def make_atlas(make_method):
    def make(steps: int = 2, **options):
        torch.manual_seed(0)
        return make_method("atlas", steps, **options)

    return make


def test_ortho_penalty_is_the_references_mean_over_rows_times_width():
    assert ortho_penalty(torch.eye(3)).item() == 0.0
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # T T^T = [[1, 1], [1, 1]]: two off-diagonal 1s
    assert ortho_penalty(t).item() == pytest.approx(0.5 / 4)  # mean 2/4, over 2 rows x 2 dims
    assert ortho_penalty(torch.tensor([[2.0, 0.0]])).item() == pytest.approx(9.0 / 2)


def test_attention_pool_is_a_convex_combination_of_query_and_tokens():
    q = torch.randn(2, 8)
    tokens = torch.randn(3, 2, 5, 8)
    z = attention_pool(q, tokens, heads=2)
    assert z.shape == (3, 2, 8)
    same = attention_pool(q, q[None, :, None].expand(3, 2, 5, 8), heads=2)
    assert torch.allclose(same, q[None].expand(3, 2, 8), atol=1e-6)  # all inputs equal q


def test_site_shapes_alpha_range_and_identity_adapters():
    torch.manual_seed(0)
    site = AtlasSite(width=16, heads=4, bottleneck=4)
    u = torch.randn(3, 7, 16)
    assert site(u) is u  # no query set active: the untouched backbone
    t0 = site.add_task(None)
    site.add_adapter(t0)
    t1 = site.add_task(t0)
    site.add_adapter(t1)
    assert torch.equal(site.exp_queries[t1], site.query_set(t0).detach())  # copied from newest
    out, alpha = site.mix(u, t1)
    assert out.shape == u.shape and alpha.shape == (3, 2)
    assert (alpha >= 0).all() and (alpha <= 1).all()
    a = site.outputs(u, t1)
    assert a.shape == (3, 2, 7, 16) and torch.allclose(a, u[:, None].expand_as(a))  # identity
    assert torch.allclose(out, alpha.sum(1)[:, None, None] * u, atol=1e-6)
    assert site.mix(u, t0)[1].shape == (3, 1)  # task 0 never sees the later adapter


def test_fast_mix_equals_the_explicit_formula():
    torch.manual_seed(1)
    site = AtlasSite(width=16, heads=4, bottleneck=4)
    for t in range(3):
        site.add_task(t - 1 if t else None)
        site.add_adapter(t)
    for adapter in site.adapters:  # non-identity adapters
        torch.nn.init.normal_(adapter.up.weight, std=0.3)
        torch.nn.init.normal_(adapter.up.bias, std=0.3)
    u = torch.randn(5, 6, 16)
    out, alpha = site.mix(u, 2)
    a = site.outputs(u, 2)
    z = attention_pool(site.query_set(2), a, heads=4)
    expected_alpha = (1 + F.cosine_similarity(z, site.key_matrix()[None], dim=-1)) / 2
    assert torch.allclose(alpha, expected_alpha, atol=1e-5)
    assert torch.allclose(out, torch.einsum("bj,bjld->bld", expected_alpha, a), atol=1e-5)


def test_atlas_attaches_two_sites_per_block_of_both_towers_and_freezes_the_backbone(make_atlas):
    method = make_atlas()
    towers = {name.split(".")[0] for name in method.sites}
    assert towers == {"visual", "transformer"}
    assert len(method.sites) == 2 * (4 + 4)
    assert not any(p.requires_grad for p in method.model.parameters())


def test_stages_freeze_the_right_parameters_and_stage1_weights_do_not_move(make_atlas, fmt):
    method = make_atlas(steps=2)
    stats = learn_task(method, fmt(small("shapes")), 0, progress=False)
    assert method.stages_run["shapes"] == [2]  # the first task skips stage 1
    assert stats.steps == 2 and [s.name for s in stats.stages] == ["stage 2"]
    assert method.num_adapters == 1
    site = next(iter(method.sites.values()))
    old_adapter = {k: v.clone() for k, v in site.adapters[0].state_dict().items()}
    old_key, old_queries = site.keys[0].detach().clone(), site.query_set(0).detach().clone()

    # the second task, stage by stage, as clviz.core.loop.learn_task runs it
    task = fmt(small_pair("matching"))
    state = method.begin_task(task, 1, draws_for(0))
    generator = torch.Generator().manual_seed(1)
    queries = site.exp_queries[state.query_set]
    adapters = method.num_adapters
    stages = list(method.stages(state))
    assert method.num_adapters == adapters, "describing the stages changed nothing"
    for stage in stages:
        groups = stage.start()
        trainable = {id(p) for g in groups for p in g["params"]}
        assert all(p.requires_grad == (id(p) in trainable) for p in method.model.parameters())
        if stage.name == "stage 1":
            assert queries.requires_grad and not site.keys[0].requires_grad
            assert not any(p.requires_grad for p in site.adapters[0].parameters())
            assert groups[0]["lr"] == pytest.approx(
                method.options.lr * method.options.query_lr_scale
            )
        else:
            after_stage1 = queries.detach().clone()
            assert not queries.requires_grad
            assert method.num_adapters == adapters + 1  # stage 2 began: the task's adapter
        optimize(method, state, stage, groups, generator, progress=False)
    method.end_task(state)
    assert method.stages_run["matching"] == [1, 2]
    assert not torch.equal(after_stage1, old_queries[:1])  # stage 1 ran
    assert torch.equal(queries.detach(), after_stage1)  # frozen in stage 2
    for k, v in site.adapters[0].state_dict().items():
        assert torch.equal(v, old_adapter[k])  # old adapter frozen
    assert torch.equal(site.keys[0].detach(), old_key)
    assert torch.equal(site.query_set(0).detach(), old_queries)  # task 0's queries frozen
    assert method.num_adapters == 2 and len(site.exp_queries) == 2  # one query set per task
    assert [len(site.query_set(i)) for i in range(2)] == [1, 2]
    assert not any(p.requires_grad for p in method.model.parameters())
    assert "matching" in method.heads


def test_stage_ablations(make_atlas, fmt):
    only1 = make_atlas(steps=1, stages="stage1", stage1_steps=1)
    learn_task(only1, fmt(small("shapes")), 0, progress=False)
    learn_task(only1, fmt(small("colors")), 1, progress=False)
    assert only1.stages_run == {"shapes": [2], "colors": [1]} and only1.num_adapters == 1
    only2 = make_atlas(steps=1, stages="stage2")
    learn_task(only2, fmt(small("shapes")), 0, progress=False)
    site = next(iter(only2.sites.values()))
    learn_task(only2, fmt(small("colors")), 1, progress=False)
    assert only2.stages_run["colors"] == [2]
    assert torch.equal(site.exp_queries[1].detach(), site.query_set(0).detach())  # untrained
    with pytest.raises(ValueError, match="stages must be one of"):
        make_atlas(stages="three")


def test_prediction_uses_the_tasks_own_query_set_and_state_round_trip(make_atlas, fmt):
    method = make_atlas(steps=2)
    tasks = [fmt(small("shapes")), fmt(small("colors"))]
    for i, task in enumerate(tasks):
        learn_task(method, task, i, seed=i, progress=False)
    images = tasks[0].images("test")[:4]
    with use_task(method.sites.values(), 0):
        own = method.model.encode_image(images.float() / 255)
    unseen = fmt(small("digits"))
    assert [method.query_index(t) for t in (*tasks, unseen)] == [0, 1, 1]  # newest for unseen
    logits = predict(method, tasks[0], 4)
    record = method.record(tasks)
    assert set(record.alphas) == {"shapes", "colors"}
    share = record.experience_share["colors"]
    assert 0.0 < share < 1.0 and record.experience_share["shapes"] == 0.0
    for alphas in record.alphas["colors"].values():
        assert alphas is not None and len(alphas) == 2 and all(0 <= a <= 1 for a in alphas)

    fresh = make_atlas(steps=2)
    fresh.load_state_dict(method.state_dict())
    assert torch.allclose(predict(fresh, tasks[0], 4), logits)
    assert fresh.query_sets == method.query_sets and fresh.num_adapters == 2
    assert own.shape[0] == 4


def test_stage_budgets_are_shares_of_the_runs_steps_unless_fixed(make_atlas):
    assert [make_atlas(steps=40).stage_steps(s, 1) for s in (1, 2)] == [20, 40]
    teaching = make_atlas(steps=40, stage1_share=1.0, stage2_share=2.0)
    assert [teaching.stage_steps(s, 1) for s in (1, 2)] == [40, 80]
    fixed = make_atlas(steps=40, stage1_share=1.0, stage1_steps=3, stage2_steps=5)
    assert [fixed.stage_steps(s, 1) for s in (1, 2)] == [3, 5]


def test_the_embedded_teaching_setting_gives_atlas_its_shares_and_the_mtil_profile_does_not():
    from clviz.experiments.profiles import make_config

    assert make_config("embedded", "atlas").options["stage2_share"] == 2.0
    assert make_config("embedded", "finetune").train.prompts == "ensemble"
    assert "stage2_share" not in make_config("mtil", "atlas").options
    assert make_config("mtil", "finetune").train.prompts == "first"


def test_every_profile_trains_atlas_on_the_reference_optimiser():
    """``Model/vilt_model.py``: AdamW (0.9, 0.98), eps 1e-4, weight decay 0.01, linear decay
    after a 10 % warm-up, plain cross-entropy; the reference's rate on ``mtil``."""
    from clviz.experiments.profiles import PROFILES, make_config

    for profile in PROFILES:
        train = make_config(profile, "atlas").train
        assert (train.schedule, train.warmup_ratio) == ("linear", 0.1), profile
        assert (train.betas, train.eps, train.weight_decay) == ((0.9, 0.98), 1e-4, 0.01)
        assert train.label_smoothing == 0.0, profile
    assert make_config("mtil", "atlas").options["lr"] == 5e-4
    assert make_config("embedded", "atlas").options["lr"] == 5e-3
    assert make_config("embedded", "finetune").train.schedule == "constant"  # ATLAS's alone
