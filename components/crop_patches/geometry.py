"""Where a patch comes from: the pixel window around a labelImg box, and how it becomes a square.

Pure functions over numbers and Pillow images, so every edge policy is testable without files.
Boxes are labelImg Pascal VOC: 1-based, inclusive corners, in the *stored* pixel frame (labelImg
does not apply EXIF orientation when it shows a photo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

EDGES = ("shift", "reflect", "constant")
SHAPES = ("square", "keep_aspect")
FITS = ("letterbox", "center_crop")
# EXIF orientation → the transpose that shows the pixels upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Window:
    """A pixel rectangle, 0-based with exclusive end; may reach outside the image (padding)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def inside(self, width: int, height: int) -> bool:
        return self.left >= 0 and self.top >= 0 and self.right <= width and self.bottom <= height

    def scaled(self, sx: float, sy: float) -> Window:
        """The same window in an image decoded at a reduced scale (at least one pixel wide)."""
        left, top = math.floor(self.left * sx), math.floor(self.top * sy)
        return Window(left, top, max(left + 1, round(self.right * sx)), max(top + 1, round(self.bottom * sy)))


def box_window(
    box: tuple[float, float, float, float],
    width: int,
    height: int,
    margin: float,
    shape: str = "square",
    edge: str = "shift",
) -> Window:
    """The window around a box plus `margin` × its side on each side.

    `shift` moves the window inside the image (clipping it only when it is larger than the image),
    so no invented pixels enter the patch; `reflect` and `constant` keep the lesion centred and
    let the window overhang, to be filled by `extract`.
    """
    x0, y0, x1, y1 = box[0] - 1, box[1] - 1, box[2], box[3]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
    if shape == "square":
        w = h = max(w, h)
    if edge == "shift":
        w, h = min(w, width), min(h, height)
        left = min(max(cx - w / 2, 0.0), width - w)
        top = min(max(cy - h / 2, 0.0), height - h)
    else:
        left, top = cx - w / 2, cy - h / 2
    w_int, h_int = max(1, round(w)), max(1, round(h))
    return Window(round(left), round(top), round(left) + w_int, round(top) + h_int)


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Mirror indices into [0, n) without repeating the edge pixel (numpy 'reflect'), any overhang."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.mod(index, period)
    return np.where(index >= n, period - index, index)


def extract(img: Image.Image, window: Window, edge: str = "shift", pad_value: int = 0) -> Image.Image:
    """The window's pixels; overhanging parts mirrored (`reflect`) or filled with `pad_value`."""
    if window.inside(img.width, img.height):
        return img.crop((window.left, window.top, window.right, window.bottom))
    if edge == "reflect":
        arr = np.asarray(img)
        ys = _reflect(np.arange(window.top, window.bottom), img.height)
        xs = _reflect(np.arange(window.left, window.right), img.width)
        return Image.fromarray(np.ascontiguousarray(arr[ys][:, xs]), mode=img.mode)
    canvas = Image.new(img.mode, (window.width, window.height), (pad_value,) * len(img.getbands()))
    inner = (max(window.left, 0), max(window.top, 0), min(window.right, img.width), min(window.bottom, img.height))
    if inner[2] > inner[0] and inner[3] > inner[1]:
        canvas.paste(img.crop(inner), (inner[0] - window.left, inner[1] - window.top))
    return canvas


def fit(patch: Image.Image, size: int, policy: str = "letterbox", pad_value: int = 0) -> Image.Image:
    """A `size`×`size` image: a square window is resized; otherwise letterboxed or centre-cropped.

    Letterboxing keeps the aspect ratio (no lesion is squashed); centre-crop keeps the middle at
    full resolution, as whole chest films are usually prepared.
    """
    w, h = patch.size
    resample = Image.Resampling.BILINEAR
    if abs(w - h) <= 1:
        return patch.resize((size, size), resample)
    if policy == "center_crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        return patch.crop((left, top, left + side, top + side)).resize((size, size), resample)
    scale = size / max(w, h)
    inner = patch.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)
    canvas = Image.new(patch.mode, (size, size), (pad_value,) * len(patch.getbands()))
    canvas.paste(inner, ((size - inner.width) // 2, (size - inner.height) // 2))
    return canvas


def upright(img: Image.Image, orientation: int) -> Image.Image:
    """Turn a stored-frame patch the way its photo's EXIF orientation says it is viewed."""
    op = _UPRIGHT.get(int(orientation or 1))
    return img.transpose(op) if op is not None else img


def reduction(needed_sides: list[float], size: int, max_factor: int = 8) -> int:
    """Largest power-of-two decode reduction that still leaves every window ≥ `size` pixels.

    JPEG decoders can skip work at 1/2, 1/4 and 1/8 scale; a 900-pixel lesion that becomes a
    64-pixel patch does not need its full-resolution pixels.
    """
    if not needed_sides:
        return 1
    ratio = min(needed_sides) / size
    factor = 1
    while factor * 2 <= min(ratio, max_factor):
        factor *= 2
    return factor
