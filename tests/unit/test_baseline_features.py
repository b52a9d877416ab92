"""train_baseline: feature shapes and normalisation, colour separation, config checks, choice of C."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from components.common.baseline import BaselineConfig, color_histograms, extract_features, hog_features, select_c
from components.common.errors import ConfigError

CLASSES = ("a", "b")


def _noise(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _solid(rgb: tuple[int, int, int], size: int = 32) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (1, size, size, 3)).copy()


def _hog_length(size: int, orientations: int, ppc: int, cpb: int) -> int:
    """Dalal-Triggs layout: overlapping blocks of cpb×cpb cells, one histogram per cell."""
    blocks = size // ppc - cpb + 1
    return blocks * blocks * cpb * cpb * orientations


@pytest.mark.parametrize(
    ("size", "orientations", "ppc", "cpb", "bins"),
    [
        (64, 9, 8, 2, 16),  # params.yaml
        (32, 9, 8, 2, 16),
        (48, 6, 16, 1, 8),
    ],
)
def test_feature_length_is_hog_plus_three_histograms(
    size: int, orientations: int, ppc: int, cpb: int, bins: int
) -> None:
    cfg = BaselineConfig(
        image_size=size,
        hog_orientations=orientations,
        hog_pixels_per_cell=ppc,
        hog_cells_per_block=cpb,
        color_bins=bins,
    )
    feats = extract_features(_noise(3, size), cfg, progress=False)
    assert feats.shape == (3, _hog_length(size, orientations, ppc, cpb) + 3 * bins)
    assert feats.dtype == np.float32 and np.isfinite(feats).all()


def test_empty_batch_keeps_the_feature_length() -> None:
    cfg = BaselineConfig(image_size=32)
    assert extract_features(_noise(0, 32), cfg, progress=False).shape == (0, _hog_length(32, 9, 8, 2) + 48)


@pytest.mark.parametrize("bins", [1, 7, 16])
def test_each_hsv_histogram_sums_to_one_whatever_the_patch_size(bins: int) -> None:
    for size in (16, 40):
        hist = color_histograms(_noise(4, size, seed=size), bins).reshape(4, 3, bins)
        assert (hist >= 0).all()
        np.testing.assert_allclose(hist.sum(axis=2), 1.0, rtol=1e-6)


def test_histograms_are_computed_per_image_not_per_batch() -> None:
    """The vectorised bincount must not leak counts between neighbouring images."""
    batch = _noise(5, 24, seed=3)
    together = color_histograms(batch, 12)
    alone = np.vstack([color_histograms(batch[i : i + 1], 12) for i in range(5)])
    np.testing.assert_array_equal(together, alone)


def test_colour_histograms_tell_red_from_green_where_hog_cannot() -> None:
    bins = 12
    red, green = _solid((220, 30, 30)), _solid((30, 200, 30))
    hue_red = color_histograms(red, bins)[0, :bins]
    hue_green = color_histograms(green, bins)[0, :bins]
    assert hue_red.argmax() == 0  # hue 0
    assert hue_green.argmax() == bins // 3  # hue 1/3
    assert np.abs(hue_red - hue_green).sum() == pytest.approx(2.0)  # disjoint supports
    # Flat images have no gradients: HOG alone sees two identical images.
    np.testing.assert_array_equal(
        hog_features(red, 9, 8, 2, progress=False), hog_features(green, 9, 8, 2, progress=False)
    )


def test_hog_sees_orientation() -> None:
    stripes = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    stripes[:, :, ::4] = 255  # vertical stripes
    turned = stripes.transpose(0, 2, 1, 3).copy()  # horizontal stripes
    a, b = (hog_features(x, 9, 8, 2, progress=False) for x in (stripes, turned))
    assert np.abs(a - b).sum() > 1.0
    np.testing.assert_allclose(color_histograms(stripes, 8), color_histograms(turned, 8))


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8), np.zeros((2, 3, 8, 8), np.uint8)]
)
def test_features_refuse_anything_but_nhwc_uint8(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="N×H×W×3 uint8"):
        color_histograms(bad, 4)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"image_size": 8}, "train_baseline.image_size"),
        ({"color_bins": 0}, "train_baseline.color_bins"),
        ({"c_grid": (0.1, 0.0)}, "train_baseline.c_grid"),
        ({"C": -1.0}, "train_baseline.C"),
        ({"class_weight": "inverse"}, "train_baseline.class_weight"),
        ({"max_iter": 0}, "train_baseline.max_iter"),
        ({"hog_orientations": 0}, "train_baseline.hog_"),
    ],
)
def test_config_errors_name_the_key(changes: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        replace(BaselineConfig(), **changes)


def _blobs(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs in 5-D, separable but not trivially (some overlap)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return rng.normal(0, 1, (n, 5)) + y[:, None] * 1.5, y


def test_select_c_tries_the_whole_grid_and_keeps_the_best_on_val() -> None:
    cfg = BaselineConfig(c_grid=(1e-4, 1e-2, 1.0))
    model, chosen, search = select_c(cfg, _blobs(0), _blobs(1), CLASSES)
    assert [row["C"] for row in search] == [1e-4, 1e-2, 1.0]
    best = max(row["val_macro_f1"] for row in search)
    assert chosen == min(row["C"] for row in search if row["val_macro_f1"] == best)  # ties → simpler model
    assert chosen == model.named_steps["svm"].C
    assert all(row["converged"] for row in search)


def test_empty_grid_uses_c_as_given() -> None:
    model, chosen, search = select_c(BaselineConfig(C=0.5, c_grid=()), _blobs(0), _blobs(1), CLASSES)
    assert chosen == 0.5 and [row["C"] for row in search] == [0.5]
    assert model.named_steps["svm"].C == 0.5


def test_equal_scores_pick_the_smallest_c() -> None:
    """Perfectly separable data: every C scores 1.0 on val, so the most regularised one wins."""
    x, y = _blobs(0)
    x = x + y[:, None] * 20
    _, chosen, search = select_c(BaselineConfig(c_grid=(1.0, 0.1, 0.01)), (x, y), (x, y), CLASSES)
    assert {row["val_macro_f1"] for row in search} == {1.0}
    assert chosen == 0.01
