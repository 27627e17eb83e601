"""The broad image-caption corpus on which the bundled tiny CLIP is pretrained.

It plays the part of CLIP's web data: every concept of the world (shapes, colours, patterns,
counts, places, emoji, digits, letters) appears in a plain, canonical style -- light
backgrounds, upright, mostly centred, in full colour -- with a caption that names several of
its attributes. The task domains (:mod:`clviz.world.domains`) show the same concepts in styles
the corpus rarely or never uses, which is what keeps zero-shot accuracy useful but unsaturated.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
from tqdm.auto import tqdm

from clviz.world import render as R
from clviz.world import sources as S
from clviz.world.domains import LETTERS
from clviz.world.seeding import image_tensor, rng_for

NUMBER_WORDS = ("one", "two", "three", "four", "five")
ALL_LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
CORPUS_FONTS = ("sans", "sans bold", "mono", "serif")
_EMOJI = "".join(S.EMOJI_GROUPS.values())

# Scene kinds and how often each is drawn.
SCENE_WEIGHTS: dict[str, float] = {
    "shape": 0.26,
    "count": 0.10,
    "pattern": 0.10,
    "color": 0.06,
    "emoji": 0.26,
    "digit": 0.11,
    "letter": 0.11,
}


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x", "sh", "ch")) else "s")


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def _dark(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(10, 70, size=3))  # type: ignore[return-value]


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str | None]:
    """A varied background, as photos have; returns the pixels and, if patterned, its name.

    Light and plain most often, but also gradients, faint patterns, dark and saturated
    backgrounds, so that the model does not tie a concept to one kind of background.
    """
    u = rng.random()
    if u < 0.3:
        return np.full((size, size, 3), 255 if u < 0.12 else R.pastel(rng), np.uint8), None
    if u < 0.5:
        return R.gradient(size, rng, R.pastel(rng), R.pastel(rng)), None
    if u < 0.65:
        name = _pick(rng, R.TEXTURES)
        return R.texture(
            name, size, rng, R.pastel(rng), (250, 250, 250), period=6 * size / 32
        ), name
    if u < 0.85:
        return R.gradient(size, rng, _dark(rng), _dark(rng)), "dark"
    return np.full((size, size, 3), R.random_color(rng), np.uint8), None


def _ink(rng: np.random.Generator, background: np.ndarray) -> tuple[int, int, int]:
    """A text colour that stands out from ``background``: dark on light, light on dark."""
    if background.mean() > 110:
        return tuple(int(v) for v in rng.integers(0, 90, size=3))  # type: ignore[return-value]
    return tuple(int(v) for v in rng.integers(180, 256, size=3))  # type: ignore[return-value]


def _scene_shape(rng, size):
    shape, cname = _pick(rng, R.SHAPES), _pick(rng, tuple(R.COLORS))
    bg, pattern = _background(rng, size)
    outline = rng.random() < 0.25
    img = R.canvas(size, bg)
    scale = rng.uniform(0.35, 0.75)
    center = R.random_center(rng, size, scale)
    R.draw_shape(
        img,
        shape,
        center,
        scale * size,
        R.jitter_color(rng, R.COLORS[cname], 20),
        angle=rng.uniform(-0.2, 0.2),
        outline_width=max(2, size // 10) if outline else 0,
    )
    noun = f"{cname} {shape}"
    caption = _pick(
        rng, (f"a {noun}.", f"a photo of a {noun}.", f"a {shape}.", f"a {cname} {shape} shape.")
    )
    if outline:
        caption = _pick(rng, (f"an outline of a {noun}.", f"an outline of a {shape}."))
    if pattern == "dark":
        caption = caption[:-1] + " on a dark background."
    elif pattern and rng.random() < 0.7:
        caption = caption[:-1] + f" on a {pattern} background."
    return img, caption


def _scene_count(rng, size):
    n = int(rng.integers(1, 6))
    bg, _ = _background(rng, size)
    img = R.canvas(size, bg)
    scale = rng.uniform(0.18, 0.26)
    if rng.random() < 0.6:
        shape, cname = _pick(rng, R.SHAPES), _pick(rng, tuple(R.COLORS))
        for center in R.scatter_centers(rng, n, size, scale):
            R.draw_shape(img, shape, center, scale * size, R.jitter_color(rng, R.COLORS[cname], 15))
        thing = f"{cname} {shape if n == 1 else _plural(shape)}"
    else:
        char = _pick(rng, _EMOJI)
        for center in R.scatter_centers(rng, n, size, scale):
            R.paste_sprite(img, S.emoji_sprite(char), center, scale * 2 * size * 1.3)
        name = S.emoji_name(char)
        thing = name if n == 1 else _plural(name)
    word = NUMBER_WORDS[n - 1]
    caption = _pick(
        rng,
        (
            f"{word} {thing}.",
            f"a photo of {word} {thing}.",
            f"{word} {'object' if n == 1 else 'objects'}.",
            f"{word} things.",
        ),
    )
    return img, caption


def _scene_pattern(rng, size):
    name, cname = _pick(rng, R.TEXTURES), _pick(rng, tuple(R.COLORS))
    period = rng.uniform(4.0, 8.0) * size / 32
    u = rng.random()
    paper = (
        (250, 250, 250)
        if u < 0.35
        else R.pastel(rng)
        if u < 0.6
        else _dark(rng)
        if u < 0.75
        else R.random_color(rng)
    )
    px = R.texture(name, size, rng, R.jitter_color(rng, R.COLORS[cname], 15), paper, period)
    caption = _pick(
        rng,
        (
            f"a {name} pattern.",
            f"a {cname} {name} pattern.",
            f"{cname} {name}.",
            f"a photo of {name}.",
        ),
    )
    return R.canvas(size, px), caption


def _scene_color(rng, size):
    cname = _pick(rng, tuple(R.COLORS))
    img = R.canvas(size, (250, 250, 250))
    scale = rng.uniform(0.75, 1.0)
    R.draw_shape(
        img,
        _pick(rng, R.SHAPES),
        R.random_center(rng, size, scale * 0.9),
        scale * size,
        R.jitter_color(rng, R.COLORS[cname], 25),
        angle=rng.uniform(0, math.pi),
    )
    caption = _pick(
        rng, (f"the color {cname}.", f"something {cname}.", f"a photo of something {cname}.")
    )
    return img, caption


def _scene_emoji(rng, size):
    char = _pick(rng, _EMOJI)
    name = S.emoji_name(char)
    bg, _ = _background(rng, size)
    img = R.canvas(size, bg)
    scale = rng.uniform(0.6, 0.95)
    if rng.random() < 0.3:  # small and placed: teaches "in the top left" and friends
        place = _pick(rng, tuple(R.POSITIONS))
        fx, fy = R.POSITIONS[place]
        scale = 0.5
        R.paste_sprite(img, S.emoji_sprite(char), (fx * 2 * size, fy * 2 * size), scale * 2 * size)
        caption = f"a {name} in the {place}."
    else:
        R.paste_sprite(
            img,
            S.emoji_sprite(char),
            R.random_center(rng, size, scale * 0.8),
            scale * 2 * size,
            rng.uniform(-10, 10),
        )
        caption = _pick(
            rng,
            (
                f"a photo of a {name}.",
                f"an emoji of a {name}.",
                f"a drawing of a {name}.",
                f"a {name}.",
            ),
        )
    return img, caption


def _scene_digit(rng, size):
    d = int(rng.integers(10))
    if rng.random() < 0.3:  # handwriting, always dark on light: light-on-dark stays the task's
        bg = R.gradient(size, rng, R.pastel(rng), R.pastel(rng))
        pool = S.digit_split("corpus", d)
        sprite, how = S.digit_sprite(int(pool[rng.integers(len(pool))])), "handwritten "
    else:
        bg, _ = _background(rng, size)
        sprite, how = S.glyph_sprite(str(d), _pick(rng, CORPUS_FONTS)), ""
    img, ink = R.canvas(size, bg), _ink(rng, bg)
    scale = rng.uniform(0.7, 0.95)
    R.paste_sprite(
        img, S.tint(sprite, ink), R.random_center(rng, size, scale * 0.7), scale * 2 * size
    )
    caption = _pick(
        rng,
        (
            f'a photo of the number: "{d}".',
            f"the {how}number {d}.",
            f"a {how}digit {d}.",
            f"the number {NUMBER_WORDS[d - 1]}." if 1 <= d <= 5 else f"the digit {d}.",
        ),
    )
    return img, caption


def _scene_letter(rng, size):
    letter = _pick(rng, ALL_LETTERS if rng.random() < 0.5 else LETTERS)
    bg, _ = _background(rng, size)
    img, ink = R.canvas(size, bg), _ink(rng, bg)
    scale = rng.uniform(0.7, 0.95)
    font = _pick(rng, CORPUS_FONTS)
    R.paste_sprite(
        img,
        S.tint(S.glyph_sprite(letter, font), ink),
        R.random_center(rng, size, scale * 0.7),
        scale * 2 * size,
        rng.uniform(-5, 5),
    )
    caption = _pick(
        rng,
        (
            f'a photo of the letter "{letter}".',
            f"the letter {letter}.",
            f"a letter {letter} in a {font} font.",
        ),
    )
    return img, caption


_SCENES = {
    "shape": _scene_shape,
    "count": _scene_count,
    "pattern": _scene_pattern,
    "color": _scene_color,
    "emoji": _scene_emoji,
    "digit": _scene_digit,
    "letter": _scene_letter,
}


def photo_variety(
    rng: np.random.Generator, img: np.ndarray, caption: str
) -> tuple[np.ndarray, str]:
    """Photometric variety, as web photos have: grey, noise, low contrast, blur.

    Applied to a share of the corpus (:data:`VARIETY_SHARE`) so that the tiny CLIP does not
    learn that every image is clean; the task domains still combine these shifts in ways the
    corpus rarely shows. A grey image is sometimes captioned as a black and white photo.
    """
    if rng.random() < 0.3:
        img = R.grayscale(img)
        if rng.random() < 0.5:
            caption = "a black and white photo of " + caption.removeprefix("a photo of ")
    if rng.random() < 0.5:
        img = R.contrast(img, rng.uniform(0.5, 0.9), rng.uniform(-30, 30))
    if rng.random() < 0.3:
        img = R.blur(img, rng.uniform(0.3, 0.7))
    if rng.random() < 0.6:
        img = R.add_noise(img, rng, rng.uniform(3, 12))
    return img, caption


VARIETY_SHARE = 0.5


def sample_caption_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """One (image, caption) pair: the canonical style, photometrically varied half the time."""
    kinds = tuple(SCENE_WEIGHTS)
    p = np.asarray([SCENE_WEIGHTS[k] for k in kinds])
    kind = kinds[rng.choice(len(kinds), p=p / p.sum())]
    img, caption = _SCENES[kind](rng, size)
    img = R.downsample(img, size)
    if rng.random() < VARIETY_SHARE:
        img, caption = photo_variety(rng, img, caption)
    return img, re.sub(r"\ba (?=[aeiou])", "an ", caption)


def make_corpus(
    n: int, seed: int = 0, image_size: int = 32, progress: bool = True
) -> tuple[torch.Tensor, list[str]]:
    """``n`` canonical image-caption pairs: uint8 images (n x 3 x H x W) and their captions."""
    rng = rng_for(seed, "corpus")
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    captions = []
    for i in tqdm(range(n), desc="drawing corpus", disable=not progress, mininterval=1.0):
        images[i], caption = sample_caption_pair(rng, image_size)
        captions.append(caption)
    return image_tensor(images), captions
