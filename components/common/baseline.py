"""The classic baseline (seed 002, chapter 3): HOG on grey + HSV colour histograms, standardised,
and a linear SVM. train_baseline fits it on the training split; crossval fits it per fold.

HOG (Dalal & Triggs) captures the texture and edge layout of a lesion (scale, borders), the colour
histograms its hue and saturation (erythema, violaceous papules, silvery scale). Together they are
what a pre-CNN dermatology classifier would use, so a CNN that cannot beat them has learned nothing
the pixels' simple statistics did not already give away.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress
from skimage.color import rgb2gray, rgb2hsv
from skimage.feature import hog
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from components.common.classifier.data import load_split
from components.common.errors import ConfigError, DataError
from components.common.metrics import classification_metrics

# The settings that make a feature vector, recorded in the logged model's metadata: the model's
# input is the vector (HOG and histograms are our code, kept out of the artifact), so whoever
# scores it must compute the vector exactly as training did, without params.yaml.
FEATURE_FIELDS = ("image_size", "hog_orientations", "hog_pixels_per_cell", "hog_cells_per_block", "color_bins")


@dataclass(frozen=True)
class BaselineConfig:
    """The `train_baseline` section of params.yaml."""

    image_size: int = 64
    hog_orientations: int = 9
    hog_pixels_per_cell: int = 8
    hog_cells_per_block: int = 2
    color_bins: int = 16  # per HSV channel
    C: float = 0.1  # used as is when c_grid is empty
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0)
    class_weight: str | None = "balanced"  # balanced | none (null)
    max_iter: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        block = self.hog_pixels_per_cell * self.hog_cells_per_block
        if min(self.hog_orientations, self.hog_pixels_per_cell, self.hog_cells_per_block) < 1:
            raise ConfigError("train_baseline.hog_*: orientations, pixels_per_cell and cells_per_block must be ≥ 1")
        if self.image_size < block:
            raise ConfigError(
                f"train_baseline.image_size: {self.image_size} is smaller than one HOG block "
                f"({self.hog_pixels_per_cell}×{self.hog_cells_per_block} = {block} pixels)"
            )
        if self.color_bins < 1:
            raise ConfigError(f"train_baseline.color_bins: must be ≥ 1, found {self.color_bins}")
        if self.C <= 0:
            raise ConfigError(f"train_baseline.C: must be > 0, found {self.C}")
        if any(c <= 0 for c in self.c_grid):
            raise ConfigError(f"train_baseline.c_grid: every C must be > 0, found {list(self.c_grid)}")
        if self.class_weight not in ("balanced", "none", None):
            raise ConfigError(f"train_baseline.class_weight: 'balanced' or 'none', found {self.class_weight!r}")
        if self.max_iter < 1:
            raise ConfigError(f"train_baseline.max_iter: must be ≥ 1, found {self.max_iter}")


def make_pipeline(cfg: BaselineConfig, C: float) -> Pipeline:
    """Standardise (HOG and histogram scales differ by orders of magnitude), then a linear SVM."""
    weight = None if cfg.class_weight in ("none", None) else cfg.class_weight
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("svm", LinearSVC(C=C, class_weight=weight, max_iter=cfg.max_iter, random_state=cfg.seed, dual="auto")),
        ]
    )


def fit(cfg: BaselineConfig, C: float, x: np.ndarray, y: np.ndarray) -> tuple[Pipeline, bool]:
    """Fit one pipeline; also say whether liblinear converged (an unconverged floor is reported)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = make_pipeline(cfg, C).fit(x, y)
    return model, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def select_c(
    cfg: BaselineConfig,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    classes: tuple[str, ...],
) -> tuple[Pipeline, float, list[dict[str, Any]]]:
    """Fit one model per C on train and keep the best on val macro-F1 (ties: the smaller C, the
    simpler model). The kept model *is* the refit on train with that C: fitting is deterministic."""
    grid = cfg.c_grid or (cfg.C,)
    search: list[dict[str, Any]] = []
    best: tuple[float, float, Pipeline] | None = None
    for C in grid:
        model, converged = fit(cfg, C, *train)
        score = classification_metrics(val[1], model.predict(val[0]), classes)["macro_f1"]
        search.append({"C": C, "val_macro_f1": score, "converged": converged})
        if best is None or (score, -C) > (best[0], -best[1]):
            best = (score, C, model)
    assert best is not None
    return best[2], best[1], search


def _check_images(images: np.ndarray) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected N×H×W×3 uint8 images, found {images.shape} {images.dtype}")


def hog_features(
    images: np.ndarray, orientations: int, pixels_per_cell: int, cells_per_block: int, progress: bool = True
) -> np.ndarray:
    """HOG of each image's grey version (N×D float32). scikit-image computes one image at a time,
    so this is the only per-image loop; the grey conversion is done for the whole batch at once."""
    _check_images(images)
    grey = rgb2gray(images)  # N×H×W float64 in [0, 1], one vectorised call
    kwargs = {
        "orientations": orientations,
        "pixels_per_cell": (pixels_per_cell, pixels_per_cell),
        "cells_per_block": (cells_per_block, cells_per_block),
        "block_norm": "L2-Hys",
        "feature_vector": True,
    }
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
    return np.hstack(
        [
            hog_features(images, cfg.hog_orientations, cfg.hog_pixels_per_cell, cfg.hog_cells_per_block, progress),
            color_histograms(images, cfg.color_bins),
        ]
    )


def split_features(
    patch_dir: Path, split: str, cfg: BaselineConfig, classes: tuple[str, ...], progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of one split of crop_patches' output, resized to `cfg.image_size`."""
    data = load_split(patch_dir, split, classes, cfg.image_size)
    if len(data.labels) == 0:
        raise DataError(patch_dir / "patches.parquet", f"the {split} split is empty")
    images = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # N×3×H×W → N×H×W×3
    return extract_features(images, cfg, progress), data.labels.numpy()


def feature_metadata(cfg: BaselineConfig, classes: tuple[str, ...]) -> dict[str, Any]:
    """The logged model's `metadata`: how its input vector is computed and what its outputs mean."""
    return {
        "features": {k: getattr(cfg, k) for k in FEATURE_FIELDS},
        "classes": list(classes),
        "input": "[HOG of the grey patch | H | S | V histograms] of an RGB patch resized to image_size",
        "output": "class index into classes",
    }


def config_from_metadata(metadata: dict[str, Any] | None, where: str) -> tuple[BaselineConfig, tuple[str, ...]]:
    """(the feature settings, the classes) a logged baseline recorded; a DataError naming `where`
    when they are missing (a model not logged by train_baseline)."""
    features, classes = (metadata or {}).get("features"), (metadata or {}).get("classes")
    if not isinstance(features, dict) or not isinstance(classes, list):
        raise DataError(where, "the model's metadata has no 'features' and 'classes': not logged by train_baseline")
    missing = [k for k in FEATURE_FIELDS if not isinstance(features.get(k), int)]
    if missing:
        raise DataError(where, f"the model's metadata lacks the integer feature settings {missing}")
    return BaselineConfig(**{k: features[k] for k in FEATURE_FIELDS}), tuple(str(c) for c in classes)
