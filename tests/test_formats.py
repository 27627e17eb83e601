"""Task formats: every kind of task as logits through CLIP's two towers, in batches."""

from __future__ import annotations

import pytest
import torch

from clviz.core.formats import ClassificationFormat, ScoreHead, make_format
from clviz.world import make_pair_task, make_task


def small_pair(kind: str):
    return make_pair_task(kind, train_per_class=4, test_per_class=2)


@pytest.mark.parametrize(
    ("kind", "classes", "modality"),
    [
        ("matching", 2, "image-text"),
        ("entailment", 3, "image-text"),
        ("vqa", 21, "image-text"),
        ("topics", 8, "text"),
        ("howmany", 5, "text"),
    ],
)
def test_pair_formats_give_logits_over_their_classes(kind, classes, modality, tiny):
    model, _, tokenizer = tiny
    fmt = make_format(small_pair(kind), tokenizer)
    head = fmt.make_head()
    if head is not None:
        fmt.init_head(model, head)
    logits = fmt.logits(model, fmt.batch("train", torch.arange(3)), head)
    assert logits.shape == (3, classes) and fmt.num_classes == classes
    assert fmt.modality == modality and fmt.multimodal == (modality == "image-text")
    with torch.no_grad():
        text = fmt.text_side(model)
        whole = torch.cat([fmt.logits(model, b, head, text) for b in fmt.batches("test", 5)])
    assert whole.shape == (fmt.size("test"), classes)


def test_classification_is_clip_zero_shot(tiny, small_task):
    from clviz.core.clip import class_text_features, image_features

    model, _, tokenizer = tiny
    fmt = make_format(small_task, tokenizer)
    assert isinstance(fmt, ClassificationFormat) and fmt.make_head() is None
    with torch.no_grad():
        logits = fmt.logits(model, fmt.batch("test", slice(0, 8)))
    cosines = (
        image_features(model, small_task.test_images[:8])
        @ class_text_features(model, tokenizer, small_task).T
    )
    torch.testing.assert_close(logits, model.logit_scale.exp() * cosines, rtol=1e-5, atol=1e-4)


def test_matching_needs_its_head_and_the_head_round_trips(tiny):
    model, _, tokenizer = tiny
    fmt = make_format(small_pair("matching"), tokenizer)
    with pytest.raises(ValueError, match="needs its ScoreHead"):
        fmt.logits(model, fmt.batch("test", slice(0, 2)))
    head = fmt.make_head()
    fmt.init_head(model, head)
    assert head.centre.item() != 0.0
    assert torch.equal(ScoreHead.from_state(head.state_dict()).centre, head.centre)


def test_unknown_families_and_types_are_clear_errors(tiny):
    with pytest.raises(TypeError, match="expected a Task"):
        make_format("shapes", tiny[2])
    assert make_format(make_format(make_task("shapes", 0, 32, 2, 1), tiny[2]), None).name == (
        "shapes"
    )
