"""Calibration: is a "90 % psoriasis" really right 90 % of the time?

Top-label expected calibration error (ECE) over equal-width confidence bins, and temperature
scaling (Guo et al., 2017): one scalar T dividing the logits, fitted by minimising the negative
log-likelihood on the VALIDATION split only, then reported on test before and after. T changes
confidences, never the predicted class, so accuracy and F1 are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from components.common.errors import ConfigError

# T is searched on log T within these bounds: wide enough for any sane network, and bounded so a
# perfectly separated validation set (NLL falls forever as T → 0) still gives a finite answer.
T_MIN, T_MAX = 0.05, 20.0


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics behind the ECE and the reliability diagram (empty bins have count 0)."""

    edges: np.ndarray  # bins + 1 edges on [0, 1]
    confidence: np.ndarray  # mean top-label confidence per bin (nan when empty)
    accuracy: np.ndarray  # share of correct top-label predictions per bin (nan when empty)
    count: np.ndarray  # samples per bin


def reliability_bins(probs: np.ndarray, y: np.ndarray, bins: int) -> ReliabilityBins:
    """Bin samples by top-label confidence into `bins` equal-width bins (lo, hi] on [0, 1]."""
    if bins < 1:
        raise ConfigError(f"evaluate_model.calibration_bins: must be ≥ 1, found {bins}")
    conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == y).astype(float) if len(probs) else np.zeros(0)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / count
        mean_acc = np.bincount(idx, weights=correct, minlength=bins) / count
    return ReliabilityBins(np.linspace(0.0, 1.0, bins + 1), mean_conf, mean_acc, count)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int) -> float:
    """Top-label ECE: Σ_b (n_b / N) · |accuracy_b − confidence_b| over equal-width bins."""
    stats = reliability_bins(probs, y, bins)
    filled = stats.count > 0
    if not filled.any():
        return 0.0
    gaps = np.abs(stats.accuracy[filled] - stats.confidence[filled])
    return float(np.sum(gaps * stats.count[filled]) / stats.count.sum())


def ece_noise_floor(probs: np.ndarray, bins: int, draws: int, seed: int) -> float:
    """The ECE a perfectly calibrated model with these confidences would show on this many samples:
    the mean, over `draws` simulations, of the ECE when each sample is right with probability equal
    to its top-label confidence. ECE is biased upwards on small test sets (a few hundred patches in
    15 bins), so a measured ECE at or below this is indistinguishable from perfect calibration."""
    if len(probs) == 0 or draws < 1:
        return 0.0
    conf = probs.max(axis=1)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    filled = count > 0
    mean_conf = np.bincount(idx, weights=conf, minlength=bins)[filled] / count[filled]
    right = np.random.default_rng(seed).random((draws, len(conf))) < conf  # draws × N outcomes
    hits = np.stack([np.bincount(idx, weights=r, minlength=bins)[filled] for r in right])
    gaps = np.abs(hits / count[filled] - mean_conf) * count[filled]
    return float(gaps.sum(axis=1).mean() / len(conf))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits_val: np.ndarray, y_val: np.ndarray) -> float:
    """The T > 0 minimising validation NLL. Deterministic (bounded Brent search on log T): NLL
    is convex in 1/T, hence unimodal in log T, so the bounded scalar search finds the optimum.
    No validation samples → 1.0 (no rescaling)."""
    if len(y_val) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: nll(logits_val, y_val, float(np.exp(log_t))),
        bounds=(np.log(T_MIN), np.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def calibrated(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities after temperature scaling."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
