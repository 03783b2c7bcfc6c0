"""Rendered item images of the demo shop (:mod:`fusionrec.data.demo`): one shape in one colour.

The colour and the shape are the image-only traits; nothing else (no text, no category cue)
is drawn. Size, position, rotation, colour jitter, background tint and pixel noise vary.
"""
from __future__ import annotations

import colorsys
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from fusionrec import output
from fusionrec.data.demo_vocab import COLOURS, SHAPES


def render_item_image(colour: str, shape: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    """Draw one item image: a ``shape`` in ``colour`` on a lightly tinted, noisy background.

    Size, position, rotation, colour (hue +-6 deg, saturation, value), background tint and
    pixel noise vary with ``rng``; nothing else (no text, no category cue) is drawn.
    """
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; use one of {list(COLOURS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; use one of {list(SHAPES)}")
    # Draw at 2x and downsample: cheap anti-aliasing so edges look like photos, not pixel art.
    big = size * 2
    bg_h = rng.uniform(0, 360)
    bg = _hsv_to_rgb(bg_h, rng.uniform(0.0, 0.12), rng.uniform(0.82, 0.98))
    fg = _hsv_to_rgb(COLOURS[colour] + rng.uniform(-6, 6), rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0))
    img = Image.new("RGB", (big, big), bg)
    draw = ImageDraw.Draw(img)
    radius = rng.uniform(0.24, 0.40) * big
    margin = radius * 1.05
    cx = rng.uniform(margin, big - margin)
    cy = rng.uniform(margin, big - margin)
    angle = rng.uniform(0, 2 * math.pi)
    _draw_shape(draw, shape, cx, cy, radius, angle, fg, bg)
    img = img.reduce(2)  # 2x2 box filter: the fastest exact downsample
    arr = np.asarray(img, dtype=np.float32)
    noise = rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(rng.uniform(2.0, 8.0))
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")


def render_images(items: pd.DataFrame, root: Path, image_size: int, jpeg_quality: int,
                  image_ss: np.random.SeedSequence, progress: bool) -> None:
    """Write ``root/<image_path>`` for every item row that has one (JPEG, one RNG stream per item)."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    entropy = image_ss.entropy
    rows = list(zip(items["image_path"], items["trait_colour"], items["trait_shape"]))
    bar = output.progress_bar(len(rows), "demo images", "img", progress)
    for j, (rel, colour, shape) in enumerate(rows):
        bar.update(1)
        if pd.isna(rel):
            continue
        # One stream per item (keyed by its index) so images do not depend on render order.
        rng = np.random.default_rng(np.random.SeedSequence([entropy, j]))
        img = render_item_image(colour, shape, rng, image_size)
        img.save(root / rel, format="JPEG", quality=jpeg_quality)
    bar.close()


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float,
                fg: tuple[int, int, int], bg: tuple[int, int, int]) -> None:
    def poly(radii: list[float], n: int, offset: float = 0.0) -> list[tuple[float, float]]:
        return [
            (cx + radii[k % len(radii)] * math.cos(angle + offset + 2 * math.pi * k / n),
             cy + radii[k % len(radii)] * math.sin(angle + offset + 2 * math.pi * k / n))
            for k in range(n)
        ]

    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
        inner = r * 0.55
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=bg)
    elif shape == "square":
        draw.polygon(poly([r], 4, math.pi / 4), fill=fg)
    elif shape == "triangle":
        draw.polygon(poly([r * 1.1], 3), fill=fg)
    elif shape == "star":
        draw.polygon(poly([r * 1.1, r * 0.45], 10), fill=fg)
    elif shape == "cross":
        arm = r * 0.33
        # A plus sign: two rotated rectangles.
        for extra in (0.0, math.pi / 2):
            a = angle + extra
            dx, dy = math.cos(a), math.sin(a)
            px, py = -dy, dx
            draw.polygon(
                [(cx + dx * r + px * arm, cy + dy * r + py * arm), (cx + dx * r - px * arm, cy + dy * r - py * arm),
                 (cx - dx * r - px * arm, cy - dy * r - py * arm), (cx - dx * r + px * arm, cy - dy * r + py * arm)],
                fill=fg,
            )
    else:  # pragma: no cover - guarded by render_item_image
        raise ValueError(shape)


def _hsv_to_rgb(h_deg: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)
