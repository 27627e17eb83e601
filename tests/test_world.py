"""The embedded world: deterministic, diverse, well-formed, with clear errors."""

from __future__ import annotations

import pytest
import torch

from clviz.core.task import FEW_SHOT_K
from clviz.world import (
    get_stream,
    list_pair_families,
    list_streams,
    list_tasks,
    make_corpus,
    make_pair_task,
    make_task,
)
from clviz.world.tasks import STREAMS


def test_default_stream_is_mtil_like():
    tasks = get_stream("default", train_per_class=3)
    assert len(tasks) >= 8
    assert len({t.name for t in tasks}) == len(tasks)
    assert len({t.templates for t in tasks}) == len(tasks), "each task has its own prompts"
    real = {t.name for t in tasks if t.source != "procedural"}
    assert {"digits", "letters"} <= real and any(n.startswith("emoji-") for n in real)
    for t in tasks:
        assert t.train_images.dtype == torch.uint8
        assert t.train_images.shape[1:] == (3, 32, 32)
        assert set(t.test_labels.tolist()) == set(range(t.num_classes))
        assert all("{}" in tpl for tpl in t.templates)


def test_tasks_are_deterministic_per_seed():
    a = make_task("emoji-food", seed=3, train_per_class=2, test_per_class=2)
    make_task.cache_clear()
    b = make_task("emoji-food", seed=3, train_per_class=2, test_per_class=2)
    c = make_task("emoji-food", seed=4, train_per_class=2, test_per_class=2)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images)


def test_styles_differ_between_domains():
    means = [
        make_task(n, train_per_class=4, test_per_class=1).train_images.float().mean().item()
        for n in ("shapes", "digits", "letters", "colors")
    ]
    assert max(means) - min(means) > 40  # dark outlines and MNIST-like digits vs light paper


def test_few_shot_stream_shares_the_test_split():
    few = get_stream("default-fewshot")
    full = get_stream("default", train_per_class=3)
    for f, g in zip(few, full, strict=True):
        assert torch.bincount(f.train_labels).tolist() == [FEW_SHOT_K] * f.num_classes
        assert torch.equal(f.test_images, g.test_images)


def test_image_size_is_configurable():
    task = make_task("letters", image_size=64, train_per_class=1, test_per_class=1)
    assert task.train_images.shape[-2:] == (64, 64)


def test_handwritten_digit_splits_are_disjoint():
    from clviz.world.sources import digit_split

    parts = [set(digit_split(p).tolist()) for p in ("corpus", "train", "test")]
    assert not (parts[0] & parts[1]) and not (parts[1] & parts[2]) and not (parts[0] & parts[2])


@pytest.mark.parametrize("bad", ["mtil", "Default", ""])
def test_unknown_stream_lists_valid_names(bad):
    with pytest.raises(ValueError, match="valid streams: default") as err:
        get_stream(bad)
    for name in list_streams():
        assert name in str(err.value)


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match=r"valid tasks:.*emoji-animals"):
        make_task("cifar100")


def test_every_stream_task_exists():
    for spec in STREAMS.values():
        assert set(spec.tasks) <= set(list_tasks())


def test_corpus_is_deterministic_and_captioned():
    x1, c1 = make_corpus(64, seed=1, progress=False)
    x2, c2 = make_corpus(64, seed=1, progress=False)
    assert torch.equal(x1, x2) and c1 == c2
    assert len(set(c1)) > 40, "captions are varied"
    assert not any(" a a" in c or " a e" in c for c in c1)


@pytest.mark.parametrize("family", list_pair_families())
def test_pair_tasks(family):
    task = make_pair_task(family, train_per_class=3, test_per_class=2)
    assert len(task.train_texts) == len(task.train_labels) == 3 * task.num_classes
    assert task.multimodal == (family not in ("topics", "howmany"))  # the text-only families
    if task.multimodal:
        assert task.train_images.shape == (len(task.train_labels), 3, 32, 32)
    assert (
        make_pair_task(family, train_per_class=3, test_per_class=2).train_texts == task.train_texts
    )


def test_matching_is_balanced():
    task = make_pair_task("matching", train_per_class=10, test_per_class=1)
    yes = [t for t, y in zip(task.train_texts, task.train_labels.tolist(), strict=True) if y == 1]
    no = [t for t, y in zip(task.train_texts, task.train_labels.tolist(), strict=True) if y == 0]
    assert len(yes) == len(no) == 10


def test_unknown_pair_family():
    with pytest.raises(ValueError, match="valid families: matching, vqa, topics"):
        make_pair_task("nlvr")


def test_few_shot_keeps_k_images_per_class_and_the_test_split():
    from clviz.world import few_shot

    task = make_task("colors", train_per_class=6, test_per_class=2)
    few = few_shot(task, 2, seed=1)
    assert torch.bincount(few.train_labels).tolist() == [2] * task.num_classes
    assert torch.equal(few.test_images, task.test_images)
    assert torch.equal(few_shot(task, 2, seed=1).train_images, few.train_images)
    with pytest.raises(ValueError, match="only 6 images of class 0"):
        few_shot(task, 7)


def test_world_splits_are_drawn_once_and_read_back_from_disk(tmp_path, monkeypatch):
    from clviz.world.tasks import cached_split, draw_split, get_domain, world_version

    monkeypatch.setenv("CLVIZ_RESULTS", str(tmp_path))
    monkeypatch.delenv("CLVIZ_WORLD_CACHE", raising=False)
    domain = get_domain("shapes")
    fresh = draw_split(domain, "test", 2, 5, 16)
    first = cached_split(domain, "test", 2, 5, 16)
    files = list((tmp_path / "_cache" / "world" / world_version()).glob("shapes-test-*.pt"))
    assert len(files) == 1
    again = cached_split(domain, "test", 2, 5, 16)  # read from the file
    for a, b, c in zip(fresh, first, again, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    monkeypatch.setenv("CLVIZ_WORLD_CACHE", "0")
    assert torch.equal(
        cached_split(domain, "test", 2, 6, 16)[0], draw_split(domain, "test", 2, 6, 16)[0]
    )
    assert len(list(files[0].parent.glob("*.pt"))) == 1  # nothing written with the cache off
    monkeypatch.setenv("CLVIZ_WORLD_CACHE", str(tmp_path / "elsewhere"))
    cached_split(domain, "test", 2, 7, 16)
    assert len(list((tmp_path / "elsewhere" / world_version()).glob("shapes-test-*.pt"))) == 1


def test_pair_task_captions_use_the_right_article_and_number():
    import re

    from clviz.world.multimodal import is_plural, with_article

    assert with_article("orange triangle") == "an orange triangle"
    assert with_article("eight") == "an eight" and with_article("one") == "a one"
    assert with_article("banana") == "a banana" and with_article("grapes") == "grapes"
    assert not is_plural("bus") and not is_plural("cross") and not is_plural("slice of pizza")
    texts = [
        text
        for family in ("matching", "entailment", "topics", "howmany")
        for text in make_pair_task(family).train_texts
    ]
    orange = [t for t in texts if t.startswith(("a orange", "an orange"))]
    assert orange and all(t.startswith("an orange") for t in orange)
    assert not [t for t in texts if re.search(r"\ba [aeiou]", t) and "a one" not in t]
    assert not [t for t in texts if re.search(r"\ban? (grapes|cherries|stripes|dots)\b", t)]
    assert any(t.startswith("i saw grapes") or " grapes " in t for t in texts)
    assert not [t for t in texts if "there are one " in t or "there is two" in t]
