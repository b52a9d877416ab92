"""Per-request scope checks (components/common/scope.py): acquisition checks on the patch and the
Mahalanobis distance of its embedding, calibrated on held-out reference rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.spatial.distance import mahalanobis

from components.common.errors import ConfigError
from components.common.scope import SATURATION, ScopeConfig, fit_scope, patch_stats

RNG = np.random.default_rng(0)
DIM, CLASSES = 32, ("nevus", "melanoma", "bcc")


def _reference(n_val: int, n_test: int, saturation: float = 0.4) -> pd.DataFrame:
    """Three Gaussian classes in a 32-d embedding space, correlated dimensions."""
    mix = RNG.normal(size=(DIM, DIM)) / np.sqrt(DIM)
    centres = {c: RNG.normal(scale=3.0, size=DIM) for c in CLASSES}
    rows = []
    for split, n in (("val", n_val), ("test", n_test)):
        for i in range(n):
            label = CLASSES[i % 3]
            rows.append(
                {
                    "split": split,
                    "label": label,
                    "embedding": (centres[label] + RNG.normal(size=DIM) @ mix).astype(np.float32),
                    SATURATION: saturation,
                }
            )
    return pd.DataFrame(rows)


def _colour_patch(value: int = 140) -> np.ndarray:
    patch = np.full((64, 64, 3), value, np.uint8)
    patch[..., 0] = min(255, value + 60)  # reddish skin
    return patch


def test_patch_statistics_agree_with_pil() -> None:
    patch = RNG.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    brightness, saturation = patch_stats(patch)
    assert abs(brightness[0] - np.asarray(Image.fromarray(patch).convert("L"), float).mean()) < 0.6
    hsv = np.asarray(Image.fromarray(patch).convert("HSV"), float)[..., 1] / 255.0
    assert abs(saturation[0] - hsv.mean()) < 0.01
    grey = np.repeat(patch[..., :1], 3, axis=2)
    assert patch_stats(grey)[1][0] == 0.0


def test_distances_are_scipy_mahalanobis_to_the_nearest_class() -> None:
    scope = fit_scope(_reference(300, 300), ScopeConfig())
    assert scope.means is not None and scope.precision is not None
    points = RNG.normal(scale=3.0, size=(5, DIM))
    expected = [min(mahalanobis(p, m, scope.precision) for m in scope.means) for p in points]
    np.testing.assert_allclose(scope.distances(points), expected, rtol=1e-9)


def test_held_out_refusals_match_the_stated_rate_and_far_points_are_refused() -> None:
    reference = _reference(600, 1000)
    scope = fit_scope(reference, ScopeConfig(false_rejection=0.02))
    test = np.stack(reference[reference.split == "test"].embedding)
    assert np.mean(scope.distances(test) > scope.threshold) <= 0.02
    val = np.stack(reference[reference.split == "val"].embedding)
    assert np.mean(scope.distances(val) > scope.threshold) <= 0.05  # the fit's own rows: no more refused
    far = test[:200] + 25.0
    assert np.all(scope.distances(far) > scope.threshold)
    verdict = scope.judge(_colour_patch(), far[0])
    assert not verdict.in_scope and verdict.reasons == ("unfamiliar",) and verdict.distance > verdict.threshold
    typical = test[np.argmin(scope.distances(test))]
    assert scope.judge(_colour_patch(), typical).in_scope


def test_grey_is_refused_only_by_a_model_trained_on_colour() -> None:
    grey_film = np.repeat(np.linspace(30, 220, 64, dtype=np.uint8)[None, :, None], 64, axis=0).repeat(3, axis=2)
    colour = fit_scope(_reference(60, 60, saturation=0.4), ScopeConfig())
    films = fit_scope(_reference(60, 60, saturation=0.0), ScopeConfig())
    assert colour.check_grey and colour.judge(grey_film, None).reasons == ("grey",)
    assert not films.check_grey and films.judge(grey_film, None).in_scope
    assert colour.judge(_colour_patch(), None).in_scope


def test_near_black_is_refused_whatever_the_reference() -> None:
    scope = fit_scope(_reference(60, 60), ScopeConfig(min_brightness=20))
    assert scope.judge(np.full((64, 64, 3), 8, np.uint8), None).reasons == ("near_black", "grey")
    assert scope.judge(_colour_patch(60), None).in_scope


def test_without_enough_reference_the_embedding_check_is_off_and_says_why() -> None:
    for reference, why in ((None, "no reference embeddings"), (_reference(2, 10), "too few held-out patches")):
        scope = fit_scope(reference, ScopeConfig())
        assert scope.threshold is None and why in scope.note
        assert scope.judge(_colour_patch(), np.zeros(DIM)).in_scope


@pytest.mark.parametrize(
    ("key", "value"), [("false_rejection", 0.0), ("min_brightness", 300), ("grey_saturation", 1.5)]
)
def test_bad_settings_name_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"serve_scope.{key}"):
        ScopeConfig(**{key: value})  # type: ignore[arg-type]
