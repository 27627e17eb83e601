"""ATLAS adapters, stages and formats: shapes, alpha range, what trains in which stage."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clviz.atlas.adapters import AtlasSite, attention_pool, ortho_penalty, using_queries
from clviz.atlas.formats import make_format
from clviz.backbone import load_backbone
from clviz.methods import TrainConfig
from clviz.methods.atlas import Atlas, AtlasOptions
from clviz.world.multimodal import make_pair_task
from clviz.world.tasks import make_task


def small_task(name: str):
    return make_task(name, train_per_class=4, test_per_class=2)


def small_pair(kind: str):
    return make_pair_task(kind, train_per_class=4, test_per_class=2)


def make_atlas(steps: int = 2, **options) -> Atlas:
    torch.manual_seed(0)
    model, _, tokenizer = load_backbone()
    return Atlas(model, tokenizer, TrainConfig(steps=steps, batch_size=8), AtlasOptions(**options))


def learn(method: Atlas, fmt, seed: int = 0) -> dict:
    method.begin_format(fmt)
    return method.learn_format(fmt, torch.Generator().manual_seed(seed), progress=False)


def test_ortho_penalty_on_known_input():
    assert ortho_penalty(torch.eye(3)).item() == 0.0
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # T T^T = [[1, 1], [1, 1]]: two off-diagonal 1s
    assert ortho_penalty(t).item() == pytest.approx(0.5)
    assert ortho_penalty(torch.tensor([[2.0, 0.0]])).item() == pytest.approx(9.0)  # (4 - 1)^2


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


def test_atlas_attaches_two_sites_per_block_of_both_towers_and_freezes_the_backbone():
    method = make_atlas()
    towers = {name.split(".")[0] for name in method.sites}
    assert towers == {"visual", "transformer"}
    assert len(method.sites) == 2 * (4 + 4)
    assert not any(p.requires_grad for p in method.model.parameters())


def test_stages_freeze_the_right_parameters_and_stage1_weights_do_not_move():
    method = make_atlas(steps=2)
    first = make_format(small_task("shapes"), method.tokenizer)
    stats = learn(method, first)
    assert method.stages_run["shapes"] == [2]  # the first task skips stage 1
    assert stats["steps"] == 2 and method.num_adapters == 1
    site = next(iter(method.sites.values()))
    old_adapter = {k: v.clone() for k, v in site.adapters[0].state_dict().items()}
    old_key, old_queries = site.keys[0].detach().clone(), site.query_set(0).detach().clone()

    second = make_format(small_pair("matching"), method.tokenizer)
    t = method.begin_format(second)
    groups = method.stage_parameters(1, t)
    trainable = {id(p) for g in groups for p in g["params"]}
    assert all(p.requires_grad == (id(p) in trainable) for p in method.model.parameters())
    assert site.exp_queries[t].requires_grad and not site.keys[0].requires_grad
    assert not any(p.requires_grad for p in site.adapters[0].parameters())
    assert groups[0]["lr"] == pytest.approx(method.options.lr * method.options.query_lr_scale)

    # run both stages, checking the stage-1 queries after stage 1 against after stage 2
    seen = {}
    original = method.stage_parameters

    def spy(stage, task):
        if stage == 2:
            seen["after_stage1"] = site.exp_queries[task].detach().clone()
        return original(stage, task)

    method.stage_parameters = spy
    method.learn_format(second, torch.Generator().manual_seed(1), progress=False)
    assert method.stages_run["matching"] == [1, 2]
    assert not torch.equal(seen["after_stage1"], site.query_set(0)[:1].detach())  # stage 1 ran
    assert torch.equal(site.exp_queries[t].detach(), seen["after_stage1"])  # frozen in stage 2
    for k, v in site.adapters[0].state_dict().items():
        assert torch.equal(v, old_adapter[k])  # old adapter frozen
    assert torch.equal(site.keys[0].detach(), old_key)
    assert torch.equal(site.query_set(0).detach(), old_queries)  # task 0's queries frozen
    assert method.num_adapters == 2 and len(site.exp_queries) == 2  # one query set per task
    assert [len(site.query_set(i)) for i in range(2)] == [1, 2]
    assert not any(p.requires_grad for p in method.model.parameters())


def test_stage_ablations():
    only1 = make_atlas(steps=1, stages="stage1", stage1_steps=1)
    learn(only1, make_format(small_task("shapes"), only1.tokenizer))
    learn(only1, make_format(small_task("colors"), only1.tokenizer))
    assert only1.stages_run == {"shapes": [2], "colors": [1]} and only1.num_adapters == 1
    only2 = make_atlas(steps=1, stages="stage2")
    learn(only2, make_format(small_task("shapes"), only2.tokenizer))
    site = next(iter(only2.sites.values()))
    learn(only2, make_format(small_task("colors"), only2.tokenizer))
    assert only2.stages_run["colors"] == [2]
    assert torch.equal(site.exp_queries[1].detach(), site.query_set(0).detach())  # untrained
    with pytest.raises(ValueError, match="stages must be one of"):
        make_atlas(stages="three")


@pytest.mark.parametrize(
    ("task", "classes"),
    [("matching", 2), ("entailment", 3), ("vqa", 21), ("topics", 8), ("howmany", 5)],
)
def test_formats_give_logits_over_their_classes(task, classes):
    method = make_atlas()
    fmt = make_format(small_pair(task), method.tokenizer)
    head = fmt.make_head()
    if head is not None:
        fmt.init_head(method.model, head)
    idx = torch.arange(3)
    logits = fmt.logits(method.model, "train", idx, head)
    assert logits.shape == (3, classes) and fmt.num_classes == classes
    assert fmt.predict(method.model, "test", head).shape == (len(fmt.test_labels), classes)
    assert fmt.multimodal == (task in ("matching", "entailment", "vqa"))
    image = make_format(small_task("shapes"), method.tokenizer)
    assert image.logits(method.model, "train", idx).shape == (3, 8)


def test_prediction_uses_the_tasks_own_query_set_and_state_round_trip():
    method = make_atlas(steps=2)
    tasks = [small_task("shapes"), small_task("colors")]
    for i, task in enumerate(tasks):
        method.begin_task(task, i)
        method.train_task(task, i, torch.Generator().manual_seed(i), progress=False)
        method.finish_task(task, i)
    images = tasks[0].test_images[:4]
    with using_queries(method.sites, 0):
        own = method.model.encode_image(images.float() / 255)
    assert method.query_index("shapes") == 0 and method.query_index("digits") == 1  # newest
    logits = method.predict(images, tasks[0])
    record = method.record(tasks)
    assert set(record["alphas"]) == {"shapes", "colors"}
    share = record["experience_share"]["colors"]
    assert 0.0 < share < 1.0 and record["experience_share"]["shapes"] == 0.0
    for alphas in record["alphas"]["colors"].values():
        assert alphas is not None and len(alphas) == 2 and all(0 <= a <= 1 for a in alphas)

    fresh = make_atlas(steps=2)
    fresh.load_state_dict(method.state_dict(), {t.name: t for t in tasks})
    assert torch.allclose(fresh.predict(images, tasks[0]), logits)
    assert fresh.names == method.names and fresh.num_adapters == 2
    assert own.shape[0] == 4
