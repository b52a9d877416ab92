"""The pixel work of crop_patches: decode one image once, at the smallest scale its patches allow.

Runs inside worker processes, so it takes and returns plain picklable values. Patches are rebuilt
from pixels and saved without `exif`/`icc_profile`/text chunks: no EXIF, GPS or DICOM tag of the
raw image can travel into a patch.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from components.common.errors import DataError
from components.common.images import load_rgb, to_rgb8
from components.crop_patches.config import CropConfig
from components.crop_patches.geometry import Window, extract, fit, reduction, upright


@dataclass(frozen=True)
class CropItem:
    """One patch to write: its window in the stored frame of the full-size image."""

    patch_id: str
    window: Window
    target: str  # absolute path of the patch file


@dataclass(frozen=True)
class ImageJob:
    path: str
    width: int
    height: int
    orientation: int
    items: tuple[CropItem, ...]


def _needed_side(window: Window, cfg: CropConfig, whole: bool) -> float:
    """The window side that ends up as `patch_size` pixels (the one decode must not starve)."""
    if whole and cfg.whole_image == "center_crop":
        return min(window.width, window.height)
    if abs(window.width - window.height) <= 1:
        return window.width
    return max(window.width, window.height)


def decode_factor(windows: list[Window], cfg: CropConfig, whole: bool) -> int:
    """The decode reduction every window allows (1 when `reduced_decode` is off)."""
    if not cfg.reduced_decode:
        return 1
    return reduction([_needed_side(w, cfg, whole) for w in windows], cfg.patch_size)


def decode_open(raw: Image.Image, factor: int) -> Image.Image:
    """8-bit RGB of an opened image at 1/`factor` scale: a JPEG decodes reduced (DCT scaling), any
    other format decodes in full and is reduced after. Serving decodes its uploads with this too."""
    width = raw.width
    if factor > 1 and raw.format == "JPEG":
        raw.draft("RGB", (math.ceil(raw.width / factor), math.ceil(raw.height / factor)))
    raw.load()
    img = to_rgb8(raw)
    if factor > 1 and img.width > math.ceil(width / factor):  # not a JPEG: reduce after decoding
        img = img.reduce(factor)
    return img


def decode(job: ImageJob, cfg: CropConfig, whole: bool) -> Image.Image:
    """8-bit RGB of the whole image in the stored frame, reduced when every patch allows it."""
    factor = decode_factor([i.window for i in job.items], cfg, whole)
    path = Path(job.path)
    if path.suffix.lower() == ".dcm":
        img = load_rgb(path)
        return img.reduce(factor) if factor > 1 and img.width > math.ceil(job.width / factor) else img
    try:
        with Image.open(path) as raw:
            return decode_open(raw, factor)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot decode image ({exc})", code="IMAGE_CORRUPT") from exc


def _clamp(window: Window, width: int, height: int) -> Window:
    """Rounding at reduced scale can push a shifted window one pixel out: pull it back in."""
    dx = max(0, -window.left) - max(0, window.right - width)
    dy = max(0, -window.top) - max(0, window.bottom - height)
    w, h = min(window.width, width), min(window.height, height)
    left, top = window.left + dx, window.top + dy
    return Window(left, top, left + w, top + h)


def render(img: Image.Image, item: CropItem, job: ImageJob, cfg: CropConfig, whole: bool) -> Image.Image:
    """The finished patch: window → pixels → square → upright."""
    window = item.window.scaled(img.width / job.width, img.height / job.height)
    if cfg.edge == "shift":
        window = _clamp(window, img.width, img.height)
    patch = extract(img, window, cfg.edge, cfg.pad_value)
    patch = fit(patch, cfg.patch_size, cfg.whole_image if whole else "letterbox", cfg.pad_value)
    if cfg.orientation == "upright":
        patch = upright(patch, job.orientation)
    return Image.frombytes("RGB", patch.size, patch.tobytes())  # pixels only: no info dict survives


def save(patch: Image.Image, target: Path, cfg: CropConfig) -> None:
    """Write atomically: an interrupted run never leaves a half patch for the next run to reuse."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".{cfg.image_format}")
    os.close(fd)
    try:
        if cfg.image_format == "jpg":
            patch.save(tmp, format="JPEG", quality=cfg.jpeg_quality)
        else:
            patch.save(tmp, format="PNG")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def crop_image(job: ImageJob, cfg: CropConfig, whole: bool) -> tuple[str, int, str | None]:
    """Worker entry: write every patch of one image. Returns (path, patches written, error or None).

    A file that fails to decode is reported, not raised, so the other images' patches are kept.
    """
    try:
        img = decode(job, cfg, whole)
        for item in job.items:
            save(render(img, item, job, cfg, whole), Path(item.target), cfg)
    except DataError as exc:
        return job.path, 0, exc.problem
    return job.path, len(job.items), None
