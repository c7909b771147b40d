"""Deterministic renderer: (scene, seed) -> PIL image on a textured, noisy canvas.

Each category is a filled silhouette drawn into a mask at 4x resolution and box-filtered down (anti-aliased
edges), tinted with its colour (jittered per instance), on a background of a muted base tone, low-frequency
blotches and per-pixel noise. Same (scene, seed, size) -> same pixels.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from ovip.config.world import COLOR_NAMES, SHAPE_NAMES
from ovip.world.scene import Scene

PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 215, 40),
    "purple": (140, 50, 190),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "pink": (245, 130, 190),
    "brown": (130, 80, 40),
    "cyan": (40, 210, 220),
    "gray": (128, 128, 128),
}
BACKGROUNDS = ((150, 140, 120), (120, 130, 140), (140, 150, 130), (135, 120, 135), (110, 110, 110))
SUPERSAMPLE = 4


def _poly(d, cx, cy, r, pts, fill=255):
    d.polygon([(cx + r * x, cy + r * y) for x, y in pts], fill=fill)


def _ellipse(d, cx, cy, r, x0, y0, x1, y1, fill=255):
    d.ellipse([cx + r * x0, cy + r * y0, cx + r * x1, cy + r * y1], fill=fill)


def _star(d, cx, cy, r):
    pts = []
    for k in range(10):
        a = -math.pi / 2 + k * math.pi / 5
        rad = 1.0 if k % 2 == 0 else 0.42
        pts.append((rad * math.cos(a), rad * math.sin(a) + 0.08))
    _poly(d, cx, cy, r, pts)


def _heart(d, cx, cy, r):
    _ellipse(d, cx, cy, r, -0.95, -0.75, 0.05, 0.25)
    _ellipse(d, cx, cy, r, -0.05, -0.75, 0.95, 0.25)
    _poly(d, cx, cy, r, [(-0.92, -0.1), (0.92, -0.1), (0, 0.95)])


def _moon(d, cx, cy, r):
    _ellipse(d, cx, cy, r, -0.9, -0.9, 0.9, 0.9)
    _ellipse(d, cx, cy, r, -0.35, -1.0, 1.25, 0.6, fill=0)


def _ring(d, cx, cy, r):
    _ellipse(d, cx, cy, r, -0.95, -0.95, 0.95, 0.95)
    _ellipse(d, cx, cy, r, -0.5, -0.5, 0.5, 0.5, fill=0)


def _cup(d, cx, cy, r):
    _poly(d, cx, cy, r, [(-0.8, -0.7), (0.4, -0.7), (0.25, 0.85), (-0.65, 0.85)])
    _ellipse(d, cx, cy, r, 0.1, -0.45, 0.95, 0.45)
    _ellipse(d, cx, cy, r, 0.35, -0.2, 0.7, 0.2, fill=0)


def _fish(d, cx, cy, r):
    _ellipse(d, cx, cy, r, -0.95, -0.5, 0.45, 0.5)
    _poly(d, cx, cy, r, [(0.3, 0.0), (0.98, -0.6), (0.98, 0.6)])


def _bell(d, cx, cy, r):
    _ellipse(d, cx, cy, r, -0.55, -0.95, 0.55, 0.15)
    _poly(d, cx, cy, r, [(-0.55, -0.4), (0.55, -0.4), (0.95, 0.65), (-0.95, 0.65)])
    _ellipse(d, cx, cy, r, -0.2, 0.55, 0.2, 0.95)


def _key(d, cx, cy, r):
    _ellipse(d, cx, cy, r, -0.98, -0.45, -0.1, 0.45)
    _ellipse(d, cx, cy, r, -0.72, -0.18, -0.36, 0.18, fill=0)
    _poly(d, cx, cy, r, [(-0.2, -0.14), (0.98, -0.14), (0.98, 0.14), (-0.2, 0.14)])
    _poly(d, cx, cy, r, [(0.55, 0.1), (0.72, 0.1), (0.72, 0.5), (0.55, 0.5)])
    _poly(d, cx, cy, r, [(0.8, 0.1), (0.98, 0.1), (0.98, 0.42), (0.8, 0.42)])


SHAPES = {
    "ball": lambda d, cx, cy, r: _ellipse(d, cx, cy, r, -0.9, -0.9, 0.9, 0.9),
    "box": lambda d, cx, cy, r: _poly(d, cx, cy, r, [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]),
    "tent": lambda d, cx, cy, r: _poly(d, cx, cy, r, [(0, -0.95), (0.98, 0.85), (-0.98, 0.85)]),
    "star": _star,
    "cross": lambda d, cx, cy, r: _poly(
        d,
        cx,
        cy,
        r,
        [
            (-0.3, -0.95),
            (0.3, -0.95),
            (0.3, -0.3),
            (0.95, -0.3),
            (0.95, 0.3),
            (0.3, 0.3),
            (0.3, 0.95),
            (-0.3, 0.95),
            (-0.3, 0.3),
            (-0.95, 0.3),
            (-0.95, -0.3),
            (-0.3, -0.3),
        ],
    ),
    "moon": _moon,
    "heart": _heart,
    "ring": _ring,
    "house": lambda d, cx, cy, r: _poly(
        d,
        cx,
        cy,
        r,
        [(0, -0.98), (0.9, -0.2), (0.7, -0.2), (0.7, 0.9), (-0.7, 0.9), (-0.7, -0.2), (-0.9, -0.2)],
    ),
    "tree": lambda d, cx, cy, r: _poly(
        d,
        cx,
        cy,
        r,
        [(0, -0.98), (0.75, 0.45), (0.15, 0.45), (0.15, 0.98), (-0.15, 0.98), (-0.15, 0.45), (-0.75, 0.45)],
    ),
    "arrow": lambda d, cx, cy, r: _poly(
        d,
        cx,
        cy,
        r,
        [(-0.95, -0.22), (0.2, -0.22), (0.2, -0.65), (0.98, 0), (0.2, 0.65), (0.2, 0.22), (-0.95, 0.22)],
    ),
    "cup": _cup,
    "fish": _fish,
    "boat": lambda d, cx, cy, r: (
        _poly(d, cx, cy, r, [(-0.98, 0.3), (0.98, 0.3), (0.6, 0.9), (-0.6, 0.9)]),
        _poly(d, cx, cy, r, [(-0.05, -0.98), (-0.05, 0.2), (-0.75, 0.2)]),
        _poly(d, cx, cy, r, [(0.05, -0.7), (0.05, 0.2), (0.6, 0.2)]),
    ),
    "bell": _bell,
    "key": _key,
    "diamond": lambda d, cx, cy, r: _poly(d, cx, cy, r, [(0, -0.98), (0.75, 0), (0, 0.98), (-0.75, 0)]),
}


if tuple(SHAPES) != SHAPE_NAMES or tuple(PALETTE) != COLOR_NAMES:  # one list of names, in names.py
    raise ImportError("ovip.world.render's SHAPES / PALETTE keys differ from ovip.config.world")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = np.array(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], dtype=np.float32)
    coarse = rng.normal(0.0, 14.0, size=(6, 6, 3)).astype(np.float32)
    blotches = (
        np.asarray(
            Image.fromarray(np.uint8(np.clip(coarse + 128, 0, 255))).resize((size, size), Image.BICUBIC),
            dtype=np.float32,
        )
        - 128
    )
    return base + blotches


def render(scene: Scene, seed: int = 0, size: int = 64) -> Image.Image:
    """Draw `scene` at `size` x `size` pixels; a pure function of (scene, seed, size)."""
    rng = np.random.default_rng(seed)
    canvas = _background(rng, size)
    big = size * SUPERSAMPLE
    for group in scene.groups:
        draw_fn = SHAPES[group.category]
        color = np.array(PALETTE[group.color], dtype=np.float32)
        for x, y in group.positions:
            mask = Image.new("L", (big, big), 0)
            draw_fn(ImageDraw.Draw(mask), x * big, y * big, group.scale * big / 2)
            alpha = np.asarray(mask.resize((size, size), Image.BOX), dtype=np.float32)[..., None] / 255.0
            tint = np.clip(color + rng.normal(0.0, 10.0, size=3), 0, 255)
            canvas = canvas * (1 - alpha) + tint * alpha
    canvas += rng.normal(0.0, 7.0, size=canvas.shape)
    return Image.fromarray(np.uint8(np.clip(canvas, 0, 255)), mode="RGB")
