"""Multi-modal and text-only task families of the embedded world (the building blocks of ATLAS).

- ``matching``: image-text matching. An image of coloured shapes and a caption; the label says
  whether the caption is true (``yes``) or has one attribute swapped (``no``).
- ``vqa``: visual question answering with a closed answer set. A question about the colour,
  the shape or the number of objects; the answer is one of the answer texts.
- ``topics``: text-only classification. A sentence that mentions one thing of the world; the
  label is the kind of thing (animal, food, vehicle, shape, colour, number, letter, pattern).
- ``entailment``: 3-way visual entailment (like SNLI-VE). An image of one coloured shape is the
  premise, a sentence the hypothesis: ``entailment`` (the caption is true), ``contradiction``
  (one attribute swapped) or ``neutral`` (true, plus a clause the image cannot confirm).
  Contradictions carry such a clause half of the time, so the clause alone does not decide.
- ``howmany``: text-only classification. A sentence about some shapes; the label is how many
  (one to five), classified against the number words.

All come as a :class:`~clviz.core.task.PairTask` with a text per example (and images where the
task has them), deterministic from a seed like the classification tasks.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from clviz.core.task import PairTask
from clviz.errors import InputError
from clviz.world import render as R
from clviz.world import sources as S
from clviz.world.corpus import NUMBER_WORDS
from clviz.world.seeding import balanced_labels, image_tensor, rng_for


def _shapes_scene(
    rng: np.random.Generator, size: int, n: int, shape: str, color: str
) -> np.ndarray:
    """``n`` copies of one coloured shape on a light background."""
    img = R.canvas(size, R.pastel(rng))
    scale = 0.55 if n == 1 else rng.uniform(0.2, 0.25)
    for center in R.scatter_centers(rng, n, size, scale):
        R.draw_shape(
            img,
            shape,
            center,
            scale * size,
            R.jitter_color(rng, R.COLORS[color], 20),
            angle=rng.uniform(-0.3, 0.3),
        )
    return R.add_noise(R.downsample(img, size), rng, 5)


#: Words spelt with a vowel that start with a consonant sound ("a one", "a unicorn").
_CONSONANT_SOUNDS = ("one", "once", "uni", "use", "usu", "eu")


def is_plural(noun: str) -> bool:
    """Whether a noun phrase of the world is plural ("grapes", "stripes"; not "bus", "cross",
    "slice of pizza"): its head word (before " of ", else the last word) ends in a plural s."""
    head = noun.split(" of ")[0].split()[-1]
    return head.endswith("s") and not head.endswith(("ss", "us"))


def with_article(noun: str) -> str:
    """``noun`` with its indefinite article: "an orange triangle", "a banana", "an eight", "a
    one"; no article before a plural ("grapes")."""
    if is_plural(noun):
        return noun
    word = noun.lower()
    vowel = word[:1] in "aeiou" and not word.startswith(_CONSONANT_SOUNDS)
    return f"{'an' if vowel else 'a'} {noun}"


def _other(rng: np.random.Generator, options: tuple[str, ...], not_this: str) -> str:
    rest = [o for o in options if o != not_this]
    return rest[rng.integers(len(rest))]


def _matching_example(rng: np.random.Generator, size: int, label: int):
    shape, color = (
        R.SHAPES[rng.integers(len(R.SHAPES))],
        tuple(R.COLORS)[rng.integers(len(R.COLORS))],
    )
    img = _shapes_scene(rng, size, 1, shape, color)
    said_shape, said_color = shape, color
    if label == 0:  # a caption with exactly one attribute wrong
        if rng.random() < 0.5:
            said_shape = _other(rng, R.SHAPES, shape)
        else:
            said_color = _other(rng, tuple(R.COLORS), color)
    return img, f"{with_article(f'{said_color} {said_shape}')}."


VQA_QUESTIONS = {
    "color": ("what color is the shape?", tuple(R.COLORS)),
    "shape": ("what shape is it?", R.SHAPES),
    "count": ("how many shapes are there?", NUMBER_WORDS),
}
VQA_ANSWERS: tuple[str, ...] = tuple(a for _, answers in VQA_QUESTIONS.values() for a in answers)


def _vqa_example(rng: np.random.Generator, size: int, label: int):
    answer = VQA_ANSWERS[label]
    kind = next(k for k, (_, answers) in VQA_QUESTIONS.items() if answer in answers)
    shape, color = (
        R.SHAPES[rng.integers(len(R.SHAPES))],
        tuple(R.COLORS)[rng.integers(len(R.COLORS))],
    )
    n = 1
    if kind == "color":
        color = answer
    elif kind == "shape":
        shape = answer
    else:
        n = NUMBER_WORDS.index(answer) + 1
    return _shapes_scene(rng, size, n, shape, color), VQA_QUESTIONS[kind][0]


TOPICS: dict[str, tuple[str, ...]] = {
    "animal": tuple(S.emoji_name(c) for c in S.EMOJI_GROUPS["animals"]),
    "food": tuple(S.emoji_name(c) for c in S.EMOJI_GROUPS["food"]),
    "vehicle": tuple(S.emoji_name(c) for c in S.EMOJI_GROUPS["vehicles"]),
    "shape": R.SHAPES,
    "color": tuple(R.COLORS),
    "number": ("seven", "nine", "zero", "six", "eight", *NUMBER_WORDS),
    "letter": tuple(f"letter {c.lower()}" for c in "ABCDEFGHJK"),
    "pattern": R.TEXTURES,
}
_SENTENCES = (  # {a}: the word with its article (none for a plural), {be}: "is" or "are"
    "i saw {a} yesterday.",
    "there {be} {a} next to the house.",
    "my friend talked about {a}.",
    "the book mentions {a} on every page.",
    "we were looking for {a}.",
    "can you find the {word}?",
)


def _topic_example(rng: np.random.Generator, size: int, label: int):
    words = TOPICS[tuple(TOPICS)[label]]
    template = _SENTENCES[rng.integers(len(_SENTENCES))]
    word = words[rng.integers(len(words))]
    be = "are" if is_plural(word) else "is"
    return None, template.format(a=with_article(word), be=be, word=word)


ENTAILMENT_LABELS = ("contradiction", "neutral", "entailment")
_UNVERIFIABLE = ("drawn yesterday", "that my friend likes", "made by a child", "for sale")


def _entailment_example(rng: np.random.Generator, size: int, label: int):
    shape, color = (
        R.SHAPES[rng.integers(len(R.SHAPES))],
        tuple(R.COLORS)[rng.integers(len(R.COLORS))],
    )
    img = _shapes_scene(rng, size, 1, shape, color)
    said_shape, said_color, clause = shape, color, ""
    if label == 0:  # contradiction: one attribute wrong, sometimes with a clause
        if rng.random() < 0.5:
            said_shape = _other(rng, R.SHAPES, shape)
        else:
            said_color = _other(rng, tuple(R.COLORS), color)
        if rng.random() < 0.5:
            clause = " " + _UNVERIFIABLE[rng.integers(len(_UNVERIFIABLE))]
    elif label == 1:  # neutral: true, plus something the image cannot show
        clause = " " + _UNVERIFIABLE[rng.integers(len(_UNVERIFIABLE))]
    return img, f"{with_article(f'{said_color} {said_shape}')}{clause}."


_COUNT_SENTENCES = (
    "there {be} {n} {noun} on the table.",
    "i counted {n} {noun} in the picture.",
    "she drew {n} {noun} on the wall.",
)


def _howmany_example(rng: np.random.Generator, size: int, label: int):
    shape = R.SHAPES[rng.integers(len(R.SHAPES))]
    noun = shape if label == 0 else shape + ("es" if shape.endswith(("s", "x")) else "s")
    template = _COUNT_SENTENCES[rng.integers(len(_COUNT_SENTENCES))]
    be = "is" if label == 0 else "are"
    return None, template.format(be=be, n=NUMBER_WORDS[label], noun=noun)


_FAMILIES = {
    "matching": (("no", "yes"), _matching_example),
    "vqa": (VQA_ANSWERS, _vqa_example),
    "topics": (tuple(TOPICS), _topic_example),
    "entailment": (ENTAILMENT_LABELS, _entailment_example),
    "howmany": (NUMBER_WORDS, _howmany_example),
}


def _split(kind: str, split: str, per_class: int, seed: int, size: int):
    labelnames, make = _FAMILIES[kind]
    rng = rng_for(seed, kind, split)
    labels = balanced_labels(rng, len(labelnames), per_class)
    images, texts = [], []
    for y in labels:
        img, text = make(rng, size, int(y))
        images.append(img)
        texts.append(text)
    tensor = None
    if images[0] is not None:
        tensor = image_tensor(images)
    return tensor, tuple(texts), torch.from_numpy(labels)


@lru_cache(maxsize=16)
def make_pair_task(
    kind: str,
    seed: int = 0,
    image_size: int = 32,
    train_per_class: int = 48,
    test_per_class: int = 24,
) -> PairTask:
    """Build the ``kind`` family's task (see :func:`list_pair_families`); cached.

    The test split never depends on ``train_per_class``, so a low-shot task is evaluated on
    exactly the examples its full-data twin is evaluated on."""
    if kind not in _FAMILIES:
        raise InputError(f"unknown task family {kind!r}; valid families: {', '.join(_FAMILIES)}")
    tr_x, tr_t, tr_y = _split(kind, "train", train_per_class, seed, image_size)
    te_x, te_t, te_y = _split(kind, "test", test_per_class, seed, image_size)
    return PairTask(kind, kind, _FAMILIES[kind][0], tr_t, tr_y, te_t, te_y, tr_x, te_x)


def list_pair_families() -> list[str]:
    """Names of the multi-modal and text-only task families."""
    return list(_FAMILIES)
