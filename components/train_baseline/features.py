"""Hand-crafted patch features for the classic baseline: HOG on grey + HSV colour histograms.

HOG (Dalal & Triggs) captures the texture and edge layout of a lesion (scale, borders), the colour
histograms its hue and saturation (erythema, violaceous papules, silvery scale). Together they are
what a pre-CNN dermatology classifier would use, so a CNN that cannot beat them has learned nothing
the pixels' simple statistics did not already give away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.progress import Progress
from skimage.color import rgb2gray, rgb2hsv
from skimage.feature import hog

if TYPE_CHECKING:
    from components.train_baseline.core import BaselineConfig


def _check_images(images: np.ndarray) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected N×H×W×3 uint8 images, found {images.shape} {images.dtype}")


def hog_features(images: np.ndarray, orientations: int, pixels_per_cell: int, cells_per_block: int,
                 progress: bool = True) -> np.ndarray:
    """HOG of each image's grey version (N×D float32). scikit-image computes one image at a time,
    so this is the only per-image loop; the grey conversion is done for the whole batch at once."""
    _check_images(images)
    grey = rgb2gray(images)  # N×H×W float64 in [0, 1], one vectorised call
    kwargs = {"orientations": orientations, "pixels_per_cell": (pixels_per_cell, pixels_per_cell),
              "cells_per_block": (cells_per_block, cells_per_block), "block_norm": "L2-Hys",
              "feature_vector": True}
    if len(images) == 0:
        size = hog(np.zeros(images.shape[1:3]), **kwargs).size
        return np.zeros((0, size), dtype=np.float32)
    rows = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("HOG features", total=len(images))
        for img in grey:
            rows.append(hog(img, **kwargs).astype(np.float32))
            bar.advance(task)
    return np.stack(rows)


def color_histograms(images: np.ndarray, bins: int) -> np.ndarray:
    """Per-channel HSV histograms with `bins` bins each, every channel summing to 1 (N×3·bins).

    Normalised by pixel count so the features do not depend on the patch size; computed for the
    whole batch with one `bincount` (offsets give each image and channel its own bins).
    """
    _check_images(images)
    n, pixels = len(images), images.shape[1] * images.shape[2]
    hsv = rgb2hsv(images).reshape(n, pixels, 3)  # values in [0, 1]
    idx = np.minimum((hsv * bins).astype(np.int64), bins - 1)
    offsets = (np.arange(n)[:, None, None] * 3 + np.arange(3)[None, None, :]) * bins
    counts = np.bincount((idx + offsets).ravel(), minlength=n * 3 * bins).reshape(n, 3 * bins)
    return (counts / max(pixels, 1)).astype(np.float32)


def extract_features(images: np.ndarray, cfg: BaselineConfig, progress: bool = True) -> np.ndarray:
    """[HOG | H histogram | S histogram | V histogram] per image, N×D float32."""
    return np.hstack([
        hog_features(images, cfg.hog_orientations, cfg.hog_pixels_per_cell, cfg.hog_cells_per_block, progress),
        color_histograms(images, cfg.color_bins),
    ])

