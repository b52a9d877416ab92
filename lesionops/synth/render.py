"""Small drawing helpers shared by the synthetic generators (numpy + Pillow + scipy, all seeded).

Everything works on float32 arrays in normalised coordinates so a generator describes anatomy once
and renders it at any size: tests use 64 px images, the demo 256-384 px, and the picture is the
same, only sharper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

Rng = np.random.Generator


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates scaled to [-1, 1] along each axis: x (1, w) and y (h, 1)."""
    x = ((np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1)[None, :]
    y = ((np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1)[:, None]
    return x, y


def noise(rng: Rng, h: int, w: int, cell: float) -> np.ndarray:
    """Band-limited noise (zero mean, unit std) with blobs about `cell` pixels wide."""
    small = rng.standard_normal((max(2, int(h / max(cell, 1e-3)) + 2), max(2, int(w / max(cell, 1e-3)) + 2)))
    n = np.asarray(Image.fromarray(small.astype(np.float32)).resize((w, h), Image.Resampling.BICUBIC))
    return ((n - n.mean()) / (n.std() + 1e-6)).astype(np.float32)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth S in between: soft anatomical edges without aliasing."""
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def ellipse(
    x: np.ndarray,
    y: np.ndarray,
    cx: float,
    cy: float,
    a: float,
    b: float,
    soft: float = 0.05,
    angle: float = 0.0,
    power: float = 2.0,
) -> np.ndarray:
    """Soft (super-)ellipse mask: 1 inside, 0 outside, a `soft`-wide ramp (in radius units) at the edge."""
    c, s = math.cos(angle), math.sin(angle)
    u, v = ((x - cx) * c + (y - cy) * s) / a, ((y - cy) * c - (x - cx) * s) / b
    r = (np.abs(u) ** power + np.abs(v) ** power) ** (1 / power)
    return smoothstep((1 - r) / max(soft, 1e-4) + 0.5)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the two image axes (channels untouched); sigma in pixels."""
    if sigma <= 0:
        return img
    return gaussian_filter(img, (sigma, sigma, 0) if img.ndim == 3 else sigma, mode="nearest")


def lines_layer(
    h: int,
    w: int,
    polylines: Sequence[Sequence[tuple[float, float]]],
    widths: Sequence[float],
    values: Sequence[float] | None = None,
) -> np.ndarray:
    """Rasterise polylines given in normalised [-1, 1] coordinates into a float mask (0..1)."""
    layer = Image.new("L", (w, h))
    draw = ImageDraw.Draw(layer)
    for i, (line, width) in enumerate(zip(polylines, widths, strict=True)):
        pts = [((px + 1) / 2 * w, (py + 1) / 2 * h) for px, py in line]
        fill = int(255 * (values[i] if values is not None else 1.0))
        draw.line(pts, fill=fill, width=max(1, round(width)), joint="curve")
    return np.asarray(layer, dtype=np.float32) / 255


def branches(
    rng: Rng, origin: tuple[float, float], direction: float, length: float, depth: int, spread: float = 0.5
) -> list[list[tuple[float, float]]]:
    """A random binary tree of short segments (vessels, bronchi, air bronchograms) from `origin`."""
    out: list[list[tuple[float, float]]] = []
    stack = [(origin, direction, length, depth)]
    while stack:
        (ox, oy), ang, seg, d = stack.pop()
        ang += rng.normal(0, 0.15)
        end = (ox + seg * math.cos(ang), oy + seg * math.sin(ang))
        out.append([(ox, oy), end])
        if d > 1:
            for turn in (-1, 1):
                stack.append((end, ang + turn * rng.uniform(0.2, spread), seg * rng.uniform(0.6, 0.8), d - 1))
    return out


def cloud(rng: Rng, h: int, w: int, cell: float, coverage: float) -> np.ndarray:
    """Soft patchy mask covering about `coverage` of the area (consolidation, rash mottling)."""
    n = noise(rng, h, w, cell)
    thr = float(np.quantile(n, 1 - min(max(coverage, 0.01), 0.99)))
    return smoothstep((n - thr) * 0.8 + 0.5)


def text_layer(h: int, w: int, text: str, xy: tuple[float, float], size: float) -> np.ndarray:
    """A text mask (e.g. the technician's L/R lead marker) with Pillow's bundled font."""
    from PIL import ImageFont

    layer = Image.new("L", (w, h))
    font = ImageFont.load_default(size=max(6.0, size))
    ImageDraw.Draw(layer).text(((xy[0] + 1) / 2 * w, (xy[1] + 1) / 2 * h), text, fill=255, font=font)
    return np.asarray(layer, dtype=np.float32) / 255


def rotate(img: np.ndarray, degrees: float, fill: float = 0.0) -> np.ndarray:
    """Rotate a float image about its centre (positioning varies from shot to shot)."""
    if abs(degrees) < 1e-3:
        return img
    out = Image.fromarray(img.astype(np.float32), "F").rotate(
        degrees, resample=Image.Resampling.BILINEAR, fillcolor=fill
    )
    return np.asarray(out, dtype=np.float32)
