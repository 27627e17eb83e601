"""The classification domains of the embedded world: classes, prompt templates and visual style.

Each domain draws its images in a style of its own (dark outlines, grey photographs, inverted
handwriting, cluttered tablecloths...). The pretraining corpus (:mod:`clviz.world.corpus`) shows
the same concepts in a plain, canonical style. The gap between the two is the embedded analogue
of the gap between web images and MTIL's datasets (satellite photos, handwritten digits,
textures): the tiny CLIP recognises a domain's classes zero-shot, but far from perfectly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from clviz.errors import InputError
from clviz.world import render as R
from clviz.world import sources as S

Drawer = Callable[[np.random.Generator, int, int], np.ndarray]


@dataclass(frozen=True)
class Domain:
    """One classification domain: what its classes are called, how it is prompted and drawn."""

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    source: str
    description: str
    draw: Drawer  # (rng, label, size) -> (size, size, 3) uint8
    draw_test: Drawer | None = None  # test images from a disjoint pool, where real data has one

    def drawer(self, split: str) -> Drawer:
        """The drawer for ``split`` ('train' or 'test')."""
        return self.draw_test if split == "test" and self.draw_test else self.draw


# ---------------------------------------------------------------- procedural domains


def _draw_shapes(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """Outlined shapes in bright colours on a dark, noisy background."""
    dark = tuple(int(v) for v in rng.integers(20, 70, size=3))
    img = R.canvas(size, dark)
    scale = rng.uniform(0.45, 0.8)
    R.draw_shape(
        img,
        R.SHAPES[label],
        R.random_center(rng, size, scale),
        scale * size,
        R.random_color(rng),
        angle=rng.uniform(-0.4, 0.4),
        outline_width=max(2, size // 10),
    )
    return R.add_noise(R.downsample(img, size), rng, 10)


def _draw_colors(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A blob of the class colour under uneven light, on a speckled background of another hue."""
    color = list(R.COLORS.values())[label]
    bg = R.texture("speckles", size, rng, R.random_color(rng, exclude=color), R.pastel(rng))
    img = R.canvas(size, R.contrast(bg, 0.5, 40))
    scale = rng.uniform(0.6, 0.95)
    shape = R.SHAPES[rng.integers(len(R.SHAPES))]
    R.draw_shape(
        img,
        shape,
        R.random_center(rng, size, scale),
        scale * size,
        R.jitter_color(rng, color, 40),
        angle=rng.uniform(0, math.pi),
    )
    out = R.downsample(img, size)
    return R.add_noise(R.contrast(out, rng.uniform(0.6, 1.1), rng.uniform(-45, 35)), rng, 8)


def _draw_textures(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A close-up of a low-contrast pattern at a random scale and angle, slightly blurred."""
    fg, bg = R.random_color(rng), R.random_color(rng)
    period = rng.uniform(3.5, 7.0) * size / 32
    out = R.texture(R.TEXTURES[label], size, rng, fg, bg, period=period)
    out = R.contrast(out, rng.uniform(0.55, 0.85), rng.uniform(-20, 20))
    return R.add_noise(R.blur(out, 0.4), rng, 8)


def _draw_counting(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """``label + 1`` small objects of mixed kinds on a faint patterned background."""
    bg = R.texture(
        R.TEXTURES[rng.integers(len(R.TEXTURES))], size, rng, R.pastel(rng), R.pastel(rng)
    )
    img = R.canvas(size, bg)
    scale = rng.uniform(0.2, 0.25)
    for center in R.scatter_centers(rng, label + 1, size, scale):
        if rng.random() < 0.5:
            R.draw_shape(
                img,
                R.SHAPES[rng.integers(len(R.SHAPES))],
                center,
                scale * size,
                R.random_color(rng),
                angle=rng.uniform(0, math.pi),
            )
        else:
            group = S.EMOJI_GROUPS["extra"]
            R.paste_sprite(
                img, S.emoji_sprite(group[rng.integers(len(group))]), center, scale * 2 * size * 1.3
            )
    return R.add_noise(R.downsample(img, size), rng, 6)


def _draw_layout(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """One small object in one of five places of the frame, on a noisy background."""
    bg = R.add_noise(np.full((size, size, 3), R.pastel(rng), np.uint8), rng, 25)
    img = R.canvas(size, bg)
    fx, fy = list(R.POSITIONS.values())[label]
    jitter = rng.uniform(-0.06, 0.06, size=2)
    center = ((fx + jitter[0]) * 2 * size, (fy + jitter[1]) * 2 * size)
    R.draw_shape(
        img, R.SHAPES[rng.integers(len(R.SHAPES))], center, 0.2 * size, R.random_color(rng)
    )
    return R.downsample(img, size)


# ---------------------------------------------------------------- real drawings


def _emoji_drawer(group: str, style: str) -> Drawer:
    chars = S.EMOJI_GROUPS[group]

    def draw(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
        sprite = S.emoji_sprite(chars[label])
        if style == "grey photo":  # desaturated, low contrast, blurred, on a grey gradient
            a, b = (tuple(int(v) for v in rng.integers(60, 200, size=3)) for _ in range(2))
            img = R.canvas(size, R.gradient(size, rng, a, b))
            scale = rng.uniform(0.7, 1.0)
            R.paste_sprite(
                img,
                sprite,
                R.random_center(rng, size, scale * 0.8),
                scale * 2 * size,
                rng.uniform(-25, 25),
            )
            out = R.grayscale(R.downsample(img, size))
            return R.add_noise(R.blur(R.contrast(out, rng.uniform(0.5, 0.9)), 0.6), rng, 8)
        if style == "tablecloth":  # small, off-centre, on a busy patterned cloth
            cloth = R.texture(
                R.TEXTURES[rng.integers(3)],
                size,
                rng,
                R.random_color(rng),
                R.pastel(rng),
                period=rng.uniform(3, 6) * size / 32,
            )
            img = R.canvas(size, cloth)
            scale = rng.uniform(0.5, 0.7)
            R.paste_sprite(
                img,
                sprite,
                R.random_center(rng, size, scale),
                scale * 2 * size,
                rng.uniform(-40, 40),
            )
            return R.add_noise(R.downsample(img, size), rng, 6)
        if style == "silhouette":  # a flat dark shape against the sky: no inner detail
            img = R.canvas(size, R.gradient(size, rng, (150, 190, 240), R.pastel(rng)))
            scale = rng.uniform(0.7, 1.0)
            ink = tuple(int(v) for v in rng.integers(10, 70, size=3))
            R.paste_sprite(
                img,
                S.tint(sprite, ink),
                R.random_center(rng, size, scale * 0.8),
                scale * 2 * size,
                rng.uniform(-15, 15),
            )
            return R.add_noise(R.downsample(img, size), rng, 6)
        raise InputError(f"unknown emoji style {style!r}")

    return draw


def _draw_digits(
    rng: np.random.Generator, label: int, size: int, split: str = "train"
) -> np.ndarray:
    """A real handwritten digit, white ink on black like MNIST, slightly rotated, with noise."""
    pool = S.digit_split(split, label)
    sprite = S.digit_sprite(int(pool[rng.integers(len(pool))]))
    img = R.canvas(size, tuple(int(v) for v in rng.integers(0, 30, size=3)))
    scale = rng.uniform(0.75, 1.0)
    R.paste_sprite(
        img,
        S.tint(sprite, (235, 235, 235)),
        R.random_center(rng, size, scale * 0.8),
        scale * 2 * size,
        rng.uniform(-15, 15),
    )
    return R.add_noise(R.downsample(img, size), rng, 10)


LETTERS = tuple("ABCDEFGHJK")  # I is left out: in a serif font it is a bar, like 1 or l
TASK_FONTS = ("serif italic", "stix italic", "computer modern", "stix")


def _draw_letters(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A letter in a serif or italic face, coloured ink on speckled paper, rotated."""
    font = TASK_FONTS[rng.integers(len(TASK_FONTS))]
    paper = R.texture("speckles", size, rng, R.pastel(rng), R.pastel(rng))
    img = R.canvas(size, R.contrast(paper, 0.6, 30))
    scale = rng.uniform(0.75, 1.0)
    ink = tuple(int(v) for v in rng.integers(0, 110, size=3))
    R.paste_sprite(
        img,
        S.tint(S.glyph_sprite(LETTERS[label], font), ink),
        R.random_center(rng, size, scale * 0.7),
        scale * 2 * size,
        rng.uniform(-25, 25),
    )
    return R.add_noise(R.downsample(img, size), rng, 6)


def _emoji_names(group: str) -> tuple[str, ...]:
    return tuple(S.emoji_name(c) for c in S.EMOJI_GROUPS[group])


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain(
            "shapes",
            R.SHAPES,
            ("a photo of a {}.", "an outline of a {}."),
            "procedural",
            "outlined geometric shapes on a dark, noisy background",
            _draw_shapes,
        ),
        Domain(
            "colors",
            tuple(R.COLORS),
            ("a photo of something {}.", "the color {}."),
            "procedural",
            "a blob of one colour under uneven light on speckles",
            _draw_colors,
        ),
        Domain(
            "textures",
            R.TEXTURES,
            ("a {} pattern.", "a close-up photo of {}."),
            "procedural",
            "low-contrast close-ups of patterns, like DTD",
            _draw_textures,
        ),
        Domain(
            "counting",
            ("one", "two", "three", "four", "five"),
            ("a photo of {} objects.", "{} things."),
            "procedural",
            "how many small objects are in the picture",
            _draw_counting,
        ),
        Domain(
            "layout",
            tuple(R.POSITIONS),
            ("an object in the {}.", "something in the {}."),
            "procedural",
            "where in the frame a small shape sits",
            _draw_layout,
        ),
        Domain(
            "emoji-animals",
            _emoji_names("animals"),
            ("a photo of a {}.", "a black and white photo of a {}."),
            "OpenMoji",
            "animals as old grey photographs",
            _emoji_drawer("animals", "grey photo"),
        ),
        Domain(
            "emoji-food",
            _emoji_names("food"),
            ("a photo of {}, a type of food.", "a photo of a {} on a table."),
            "OpenMoji",
            "food, small, on a patterned tablecloth",
            _emoji_drawer("food", "tablecloth"),
        ),
        Domain(
            "emoji-vehicles",
            _emoji_names("vehicles"),
            ("a silhouette of a {}.", "a photo of a {}."),
            "OpenMoji",
            "vehicles as dark silhouettes",
            _emoji_drawer("vehicles", "silhouette"),
        ),
        Domain(
            "digits",
            tuple(str(d) for d in range(10)),
            ('a photo of the number: "{}".',),
            "scikit-learn handwritten digits",
            "real handwriting, white on black like MNIST",
            partial(_draw_digits, split="train"),
            partial(_draw_digits, split="test"),
        ),
        Domain(
            "letters",
            LETTERS,
            ('a photo of the letter "{}".', "the letter {}."),
            "matplotlib fonts",
            "letters in serif and italic faces on speckled paper",
            _draw_letters,
        ),
    )
}
