"""Is this photo something the model was trained to answer? One request at a time.

A window test (monitor_drift) sees a chest film sent to a skin model only when many arrive; the
photo itself still gets a confident top-3. `ScopeModel` decides per request, from what the champion
already carries (its drift reference, components/common/drift_reference.py):

* **Acquisition**, on the model's input patch: `near_black` (mean luma under `min_brightness`: no
  lesion can be read) and `grey` (mean HSV saturation under `grey_saturation`, checked only when at
  most `grey_reference_share` of the reference patches are that grey — a skin model refuses a film,
  a chest-film model does not).
* **Embedding**: the Mahalanobis distance of the patch's embedding to the nearest class mean, with
  one shared covariance (Lee et al. 2018, "A simple unified framework for detecting out-of-
  distribution samples"), shrunk by Ledoit–Wolf because there are fewer held-out patches than
  embedding dimensions. Means and covariance are fitted on the reference's val rows; the threshold
  is the (1 − `false_rejection`) quantile of the distances of its TEST rows, which the fit never
  saw, so the stated false-rejection rate is measured on held-out photos rather than assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf

from components.common.errors import ConfigError
from components.common.image_stats import luma_and_saturation

BRIGHTNESS, SATURATION = "patch_brightness", "patch_saturation"  # reference model.parquet columns
MIN_ROWS_PER_CLASS = 2  # a class mean needs two val patches; fewer and the embedding check is off


@dataclass(frozen=True)
class ScopeConfig:
    """`serve_scope` in params.yaml."""

    enabled: bool = True
    false_rejection: float = 0.01  # share of in-distribution (held-out test) patches the embedding check refuses
    min_brightness: float = 20.0  # mean luma of the patch, 0–255
    grey_saturation: float = 0.03  # mean HSV saturation, 0–1
    grey_reference_share: float = 0.01  # the grey check runs only when the reference is (almost) never this grey

    def __post_init__(self) -> None:
        checks = [
            (0 < self.false_rejection < 1, "false_rejection", "0 < value < 1", self.false_rejection),
            (0 <= self.min_brightness < 255, "min_brightness", "0 ≤ value < 255", self.min_brightness),
            (0 <= self.grey_saturation < 1, "grey_saturation", "0 ≤ value < 1", self.grey_saturation),
            (0 <= self.grey_reference_share < 1, "grey_reference_share", "0 ≤ value < 1", self.grey_reference_share),
        ]
        for ok, name, expected, found in checks:
            if not ok:
                raise ConfigError(f"serve_scope.{name}: expected {expected}, found {found!r}")


def patch_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean luma 0–255, mean HSV saturation 0–1) of N×H×W×3 uint8 patches."""
    pixels = np.asarray(images, dtype=np.float64)
    if pixels.ndim == 3:
        pixels = pixels[None]
    luma, saturation = luma_and_saturation(pixels)  # the measures monitor_drift's masks read
    return luma.mean(axis=(1, 2)), saturation.mean(axis=(1, 2))


@dataclass(frozen=True)
class Verdict:
    in_scope: bool
    reasons: tuple[str, ...]  # near_black | grey | unfamiliar (the embedding check)
    distance: float | None  # Mahalanobis distance to the nearest class mean; None: check off
    threshold: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_scope": self.in_scope,
            "reasons": list(self.reasons),
            "distance": None if self.distance is None else round(self.distance, 4),
            "threshold": None if self.threshold is None else round(self.threshold, 4),
        }


@dataclass(frozen=True)
class ScopeModel:
    cfg: ScopeConfig
    means: np.ndarray | None  # K×D class means (val rows); None: the embedding check is off
    precision: np.ndarray | None  # D×D inverse of the shrunk shared covariance
    threshold: float | None
    check_grey: bool
    note: str  # why a check is off, or how the threshold was set

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row to its nearest class mean (N)."""
        assert self.means is not None and self.precision is not None
        diff = np.asarray(embeddings, dtype=np.float64)[:, None, :] - self.means[None]  # N×K×D
        squared = np.einsum("nkd,de,nke->nk", diff, self.precision, diff)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))

    def judge(self, patch: np.ndarray, embedding: np.ndarray | None) -> Verdict:
        """The verdict on one H×W×3 uint8 patch and its embedding."""
        brightness, saturation = (float(v[0]) for v in patch_stats(patch))
        reasons = []
        if brightness < self.cfg.min_brightness:
            reasons.append("near_black")
        if self.check_grey and saturation < self.cfg.grey_saturation:
            reasons.append("grey")
        distance = None
        if self.threshold is not None and embedding is not None:
            distance = float(self.distances(np.asarray(embedding)[None])[0])
            if distance > self.threshold:
                reasons.append("unfamiliar")
        return Verdict(not reasons, tuple(reasons), distance, self.threshold)


def _grey_check(reference: pd.DataFrame, cfg: ScopeConfig) -> bool:
    if SATURATION not in reference or reference[SATURATION].isna().all():
        return True  # a reference without patch statistics: a skin model's, as every model before them
    share = float((reference[SATURATION] < cfg.grey_saturation).mean())
    return share <= cfg.grey_reference_share


def fit_scope(reference: pd.DataFrame | None, cfg: ScopeConfig) -> ScopeModel:
    """The scope of a model from its reference `model.parquet` rows (split, label, embedding, and
    the patch statistics when the reference has them)."""
    if reference is None or reference.empty or "embedding" not in reference:
        return ScopeModel(cfg, None, None, None, True, "no reference embeddings: embedding check off")
    check_grey = _grey_check(reference, cfg)
    val, test = reference[reference.split == "val"], reference[reference.split == "test"]
    counts = val.label.value_counts()
    if val.empty or test.empty or (counts < MIN_ROWS_PER_CLASS).any():
        return ScopeModel(cfg, None, None, None, check_grey, "too few held-out patches: embedding check off")
    emb = np.stack([np.asarray(e, dtype=np.float64) for e in val.embedding])
    labels = val.label.to_numpy()
    classes = sorted(counts.index)
    means = np.stack([emb[labels == c].mean(axis=0) for c in classes])
    centred = emb - means[np.searchsorted(classes, labels)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    partial = ScopeModel(cfg, means, precision, None, check_grey, "")
    held_out = partial.distances(np.stack([np.asarray(e, dtype=np.float64) for e in test.embedding]))
    threshold = float(np.quantile(held_out, 1.0 - cfg.false_rejection, method="higher"))
    note = (
        f"threshold {threshold:.3f}: the {1 - cfg.false_rejection:.0%} quantile of {len(held_out)} held-out "
        f"test patches (fit on {len(val)} val patches, {len(classes)} classes)"
    )
    return ScopeModel(cfg, means, precision, threshold, check_grey, note)
