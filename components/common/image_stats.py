"""Per-image acquisition statistics: the columns the drift test compares.

These are deliberately model-free: a camera swap, new lighting or a failing upload shows up in
brightness, colour, sharpness and resolution before any label is known, and they cost one small
decode per image. Pixels are taken in the stored frame (no EXIF rotation), like every other stage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from rich import get_console
from rich.progress import Progress
from scipy import ndimage

from components.common.errors import DataError
from components.common.images import PHOTO_EXTENSIONS, load_reduced, to_rgb8
from components.common.skin_tone import ITA_COLUMN, ita_of_pixels

FEATURES: tuple[str, ...] = (
    "brightness",
    "contrast",
    "mean_r",
    "mean_g",
    "mean_b",
    "saturation",
    "sharpness",
    "width",
    "height",
)
# Skin tone (ITA°, components/common/skin_tone.py) is stored beside FEATURES, not among them: it has
# its own calibrated test (monitor_drift "skin_tone"), so the min-p over FEATURES does not dilute it.
COLUMNS: tuple[str, ...] = (*FEATURES, ITA_COLUMN)
# ITU-R BT.601 weights, the same luma PIL uses for mode "L".
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class FeatureTable:
    """Features of the images that could be read, and the files that could not (with why)."""

    frame: pd.DataFrame  # columns: path + COLUMNS (FEATURES and ita), one row per readable image
    unreadable: tuple[tuple[str, str], ...] = ()


def luma_and_saturation(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel BT.601 luma (0–255) and HSV saturation (0–1) of float RGB pixels (last axis): the
    brightness and saturation every acquisition check reads (monitor_drift's masks, serving's scope)."""
    luma = pixels @ _LUMA.astype(pixels.dtype)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]  # elementwise: 60x faster than max(axis=-1) over 3
    hi, lo = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    return luma, np.divide(hi - lo, hi, out=np.zeros_like(hi), where=hi > 0)


def image_features(
    img: Image.Image, max_side: int = 256, original_size: tuple[int, int] | None = None
) -> dict[str, float]:
    """Statistics of one image, computed on a copy downscaled to ≤ `max_side` pixels per side, and
    its skin tone (ITA° of the whole frame: serving does not know where the lesion is).

    `original_size` is the size as stored on disk when `img` was already reduced while decoding
    (JPEG draft mode); width/height report the stored size because resolution is itself a signal.
    """
    width, height = original_size or img.size
    rgb = to_rgb8(img)
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    arr = np.asarray(rgb, dtype=np.float32)
    luma, saturation = luma_and_saturation(arr)
    means = arr.reshape(-1, 3).mean(axis=0)
    ita = ita_of_pixels(np.asarray(rgb))
    return {
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "mean_r": float(means[0]),
        "mean_g": float(means[1]),
        "mean_b": float(means[2]),
        "saturation": float(saturation.mean()),
        # Variance of the Laplacian: the classic focus measure; blur removes high frequencies.
        "sharpness": float(ndimage.laplace(luma, mode="reflect").var()),
        "width": float(width),
        "height": float(height),
        ITA_COLUMN: ita,
    }


def read_features(path: Path, max_side: int = 256) -> dict[str, float]:
    """Decode `path` cheaply (images.load_reduced) and return its features; DataError when it cannot be decoded."""
    small, size = load_reduced(path, max_side)
    return image_features(small, max_side, original_size=size)


def _safe(args: tuple[Path, int]) -> tuple[Path, dict[str, float] | None, str]:
    path, max_side = args
    try:
        return path, read_features(path, max_side), ""
    except DataError as exc:
        return path, None, exc.problem


def features_frame(
    paths: Sequence[Path], max_side: int = 256, workers: int = 0, progress: str | None = None
) -> FeatureTable:
    """Features of many images; unreadable ones are skipped and listed, never fatal.

    A file that does not decode is an acquisition failure worth counting, not a reason to lose
    the whole window. Threads suffice: PIL and numpy release the GIL while decoding and reducing.
    `progress` names a progress bar, drawn on a terminal only (10,000 photos take about a minute).
    """
    n_workers = workers or min(8, os.cpu_count() or 1)
    rows: list[dict[str, object]] = []
    bad: list[tuple[str, str]] = []
    with (
        ThreadPoolExecutor(max_workers=n_workers) as pool,
        Progress(disable=not (progress and get_console().is_terminal)) as bar,
    ):
        task = bar.add_task(progress or "", total=len(paths))
        for path, feats, problem in pool.map(_safe, [(Path(p), max_side) for p in paths]):
            bar.advance(task)
            if feats is None:
                bad.append((str(path), problem))
            else:
                rows.append({"path": str(path), **feats})
    frame = pd.DataFrame(rows, columns=["path", *COLUMNS])
    frame[list(COLUMNS)] = frame[list(COLUMNS)].astype(float)
    return FeatureTable(frame, tuple(bad))


def list_images(folder: Path, extensions: Sequence[str] = PHOTO_EXTENSIONS) -> list[Path]:
    """Every image file under `folder` (recursive), sorted so runs are reproducible."""
    if not folder.is_dir():
        raise DataError(folder, "current window folder does not exist")
    exts = {e.lower() for e in extensions}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)
