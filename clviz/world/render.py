"""Drawing primitives of the embedded world: colours, shapes, textures, backgrounds, effects.

Everything draws into numpy ``uint8`` arrays of shape (H, W, 3) or PIL images and takes an
explicit ``numpy.random.Generator``, so a world built from a seed is the same on every machine.
Shapes are drawn at twice the target size and downsampled, which anti-aliases them cheaply.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from clviz.errors import InputError

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (40, 165, 55),
    "blue": (35, 85, 215),
    "purple": (135, 55, 185),
    "pink": (245, 125, 185),
    "brown": (125, 75, 35),
}

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "cross",
    "heart",
    "diamond",
)

TEXTURES: tuple[str, ...] = (
    "stripes",
    "checkerboard",
    "dots",
    "waves",
    "zigzag",
    "grid",
    "speckles",
    "rings",
)

POSITIONS: dict[str, tuple[float, float]] = {
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
    "center": (0.5, 0.5),
}


def jitter_color(rng: np.random.Generator, rgb: RGB, amount: float) -> RGB:
    """Perturb a colour by up to ``amount`` (0..255) per channel, clipped to the valid range."""
    noise = rng.uniform(-amount, amount, size=3)
    return tuple(int(c) for c in np.clip(np.asarray(rgb) + noise, 0, 255))  # type: ignore[return-value]


def random_color(rng: np.random.Generator, exclude: RGB | None = None) -> RGB:
    """One of the named colours, jittered; optionally different from ``exclude``."""
    names = [n for n, c in COLORS.items() if c != exclude]
    return jitter_color(rng, COLORS[names[rng.integers(len(names))]], 20)


def pastel(rng: np.random.Generator) -> RGB:
    """A light, low-saturation colour for backgrounds."""
    return tuple(int(v) for v in rng.integers(205, 256, size=3))  # type: ignore[return-value]


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a regular-ish polygon for ``shape`` (all but the circle)."""
    if shape == "square":
        pts = [(math.cos(a), math.sin(a)) for a in np.arange(4) * math.pi / 2 + math.pi / 4]
    elif shape == "diamond":
        pts = [(0.75 * math.cos(a), math.sin(a)) for a in np.arange(4) * math.pi / 2]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in np.arange(3) * 2 * math.pi / 3 - math.pi / 2]
    elif shape == "hexagon":
        pts = [(math.cos(a), math.sin(a)) for a in np.arange(6) * math.pi / 3]
    elif shape == "star":
        pts = [
            (
                (1.0 if i % 2 == 0 else 0.42) * math.cos(a),
                (1.0 if i % 2 == 0 else 0.42) * math.sin(a),
            )
            for i, a in enumerate(np.arange(10) * math.pi / 5 - math.pi / 2)
        ]
    elif shape == "cross":
        w = 0.34
        pts = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
    elif shape == "heart":
        t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        x = 16 * np.sin(t) ** 3 / 17
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) / 17
        pts = list(zip(x, y + 0.1, strict=True))
    else:
        raise InputError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def draw_shape(
    img: Image.Image,
    shape: str,
    center: tuple[float, float],
    radius: float,
    color: RGB,
    angle: float = 0.0,
    outline_width: int = 0,
) -> None:
    """Draw a filled shape (or only its outline when ``outline_width > 0``) onto ``img``."""
    draw = ImageDraw.Draw(img)
    cx, cy = center
    fill, outline = (None, color) if outline_width else (color, None)
    if shape == "circle":
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        draw.ellipse(box, fill=fill, outline=outline, width=outline_width or 1)
    else:
        pts = _polygon(shape, cx, cy, radius, angle)
        if outline_width:
            draw.line([*pts, pts[0]], fill=color, width=outline_width, joint="curve")
        else:
            draw.polygon(pts, fill=fill)


def texture(
    name: str,
    size: int,
    rng: np.random.Generator,
    fg: RGB,
    bg: RGB,
    period: float = 6.0,
    angle: float | None = None,
) -> np.ndarray:
    """A (size, size, 3) uint8 pattern: ``fg`` where the pattern is on, ``bg`` elsewhere."""
    angle = rng.uniform(0, math.pi) if angle is None else angle
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = xx * math.cos(angle) + yy * math.sin(angle) + rng.uniform(0, period)
    v = -xx * math.sin(angle) + yy * math.cos(angle) + rng.uniform(0, period)
    p = period
    if name == "stripes":
        on = (u % p) < p / 2
    elif name == "checkerboard":
        on = (np.floor(u / p) + np.floor(v / p)) % 2 == 0
    elif name == "dots":
        du, dv = (u % p) - p / 2, (v % p) - p / 2
        on = du**2 + dv**2 < (0.3 * p) ** 2
    elif name == "waves":
        on = ((v + 0.35 * p * np.sin(2 * math.pi * u / (2 * p))) % p) < p / 2.5
    elif name == "zigzag":
        tri = np.abs((u / p) % 2 - 1) * p
        on = ((v + tri) % p) < p / 2.5
    elif name == "grid":
        on = ((u % p) < max(1.0, p / 5)) | ((v % p) < max(1.0, p / 5))
    elif name == "speckles":
        on = rng.random((size, size)) < 0.3
    elif name == "rings":
        cx, cy = rng.uniform(0, size, size=2)
        on = (np.hypot(xx - cx, yy - cy) % p) < p / 2
    else:
        raise InputError(f"unknown texture {name!r}; valid textures: {', '.join(TEXTURES)}")
    out = np.where(on[..., None], np.asarray(fg, np.uint8), np.asarray(bg, np.uint8))
    return out.astype(np.uint8)


def gradient(size: int, rng: np.random.Generator, a: RGB, b: RGB) -> np.ndarray:
    """A linear gradient from colour ``a`` to ``b`` in a random direction."""
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = xx * math.cos(angle) + yy * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    out = (1 - t[..., None]) * np.asarray(a) + t[..., None] * np.asarray(b)
    return out.astype(np.uint8)


def paste_sprite(
    canvas: Image.Image,
    sprite: Image.Image,
    center: tuple[float, float],
    size: float,
    angle_deg: float = 0.0,
) -> None:
    """Alpha-composite an RGBA ``sprite`` scaled to ``size`` pixels and rotated onto ``canvas``."""
    px = max(2, round(size))
    s = sprite.resize((px, px), Image.LANCZOS)
    if angle_deg:
        s = s.rotate(angle_deg, resample=Image.BILINEAR, expand=True)
    x = round(center[0] - s.width / 2)
    y = round(center[1] - s.height / 2)
    canvas.paste(s, (x, y), s)


def add_noise(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add i.i.d. Gaussian pixel noise of std ``sigma`` (0..255 scale)."""
    noisy = img.astype(np.float32) + rng.normal(0, sigma, size=img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def grayscale(img: np.ndarray) -> np.ndarray:
    """Luminance copied to three channels."""
    lum = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(lum[..., None], 3, axis=2).astype(np.uint8)


def contrast(img: np.ndarray, factor: float, brightness: float = 0.0) -> np.ndarray:
    """Scale contrast around mid-grey by ``factor`` and shift brightness (0..255 scale)."""
    out = (img.astype(np.float32) - 128.0) * factor + 128.0 + brightness
    return np.clip(out, 0, 255).astype(np.uint8)


def blur(img: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of ``radius`` pixels."""
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))


def downsample(img: Image.Image, size: int) -> np.ndarray:
    """Resize a supersampled PIL image to ``size`` x ``size`` RGB uint8."""
    return np.asarray(img.convert("RGB").resize((size, size), Image.BOX))


def canvas(size: int, background: np.ndarray | tuple[int, int, int]) -> Image.Image:
    """An RGBA canvas at twice ``size`` (for anti-aliasing) filled with ``background``."""
    big = 2 * size
    if isinstance(background, np.ndarray):
        bg = Image.fromarray(background).resize((big, big), Image.NEAREST)
        return bg.convert("RGBA")
    return Image.new("RGBA", (big, big), (*background, 255))


def random_center(rng: np.random.Generator, size: int, scale: float) -> tuple[float, float]:
    """A random centre on the 2x canvas that keeps an object of ``scale`` inside the frame."""
    big = 2 * size
    margin = scale * big / 2
    return tuple(rng.uniform(margin, big - margin, size=2))  # type: ignore[return-value]


def scatter_centers(
    rng: np.random.Generator, n: int, size: int, scale: float
) -> list[tuple[float, float]]:
    """``n`` centres on the 2x canvas with no two objects overlapping (rejection sampling)."""
    big, min_dist = 2 * size, scale * 2 * size * 1.05
    for _ in range(200):
        pts = [random_center(rng, size, scale) for _ in range(n)]
        if all(math.dist(p, q) >= min_dist for i, p in enumerate(pts) for q in pts[:i]):
            return pts
    step = big / (n + 1)  # fall back to a diagonal that always fits
    return [(step * (i + 1), step * (i + 1)) for i in range(n)]
