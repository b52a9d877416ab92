"""Patient-level bootstrap confidence intervals, and the paired challenger − champion difference.

Patches of one patient are not independent (same skin, same camera, same day), so resampling
patches would give intervals that are too narrow. Here PATIENTS are drawn with replacement and
bring all their test patches. A resample is a vector of per-patient counts; every metric is a
function of the confusion matrix, and the resampled confusion matrices are one matrix product
(counts R×P @ per-patient confusion P×K²), so 1,000 resamples cost milliseconds.

The paired difference uses the same patient resamples for both models: the shared case-mix
cancels, which is what makes a non-inferiority decision on one test set meaningful. When the patch
table has `split_group` (patients joined by byte copies and near-duplicate photos, which are not
independent either), the resampling unit is the split group (`resampling_units`).

It lives in common because two stages use it: evaluate_model (CIs, the gate) and train_model
(which epoch's weights to keep, against the val split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.errors import ConfigError

METRICS = ("accuracy", "macro_f1", "macro_recall")


@dataclass(frozen=True)
class BootstrapConfig:
    """A patient bootstrap: `evaluate_model.bootstrap` in params.yaml (train_model builds its own)."""

    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0


def resampling_units(patients: Sequence[str], patch_dir: Path) -> list[str]:
    """Each sample's bootstrap unit: its patient's split group when `patches.parquet` has the column
    (a patient belongs to exactly one group), else the patient itself (older tables)."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = patch_dir / "patches.parquet"
    if not path.is_file() or "split_group" not in pq.read_schema(path).names:
        return [str(p) for p in patients]
    table = pd.read_parquet(path, columns=["patient_id", "split_group"]).dropna().astype(str)
    group = dict(zip(table.patient_id, table.split_group, strict=True))
    return [group.get(str(p), str(p)) for p in patients]


def patient_counts(
    patients: Sequence[str], cfg: BootstrapConfig, where: str = "evaluate_model.bootstrap"
) -> tuple[np.ndarray, np.ndarray]:
    """(R×P counts of how often each patient is drawn, patient index of every sample).

    Drawing P patients with replacement is a multinomial(P, uniform) draw; seeded, so the same
    config gives the same resamples for the challenger, the champion and their difference.
    `where` names the params section `cfg` came from, for the error.
    """
    if cfg.n_resamples < 1:
        raise ConfigError(f"{where}.n_resamples: must be ≥ 1, found {cfg.n_resamples}")
    if not 0.0 < cfg.confidence < 1.0:
        raise ConfigError(f"{where}.confidence: must be in (0, 1), found {cfg.confidence}")
    ids, index = np.unique(np.asarray(patients, dtype=str), return_inverse=True)
    rng = np.random.default_rng(cfg.seed)
    counts = (
        rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=cfg.n_resamples)
        if len(ids)
        else np.zeros((cfg.n_resamples, 0), dtype=np.int64)
    )
    return counts.astype(np.float64), index


def resampled_confusions(
    y: np.ndarray, pred: np.ndarray, counts: np.ndarray, index: np.ndarray, n_classes: int
) -> np.ndarray:
    """R×K×K confusion matrices (rows = truth), one per patient resample."""
    per_patient = np.zeros((counts.shape[1], n_classes * n_classes))
    np.add.at(per_patient, (index, np.asarray(y) * n_classes + np.asarray(pred)), 1.0)
    return (counts @ per_patient).reshape(-1, n_classes, n_classes)


def confusion_metrics(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and macro recall of a stack of confusion matrices, exactly as
    `classification_metrics` scores one: macro means run over the classes present in the truth
    (F1 = 2·TP / (support + predicted), 0 when a present class is never predicted right)."""
    diag = np.diagonal(conf, axis1=1, axis2=2)
    support, predicted = conf.sum(axis=2), conf.sum(axis=1)
    present = support > 0
    n_present = np.maximum(present.sum(axis=1), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(present, diag / support, 0.0)
        f1 = np.where(present, 2.0 * diag / (support + predicted), 0.0)
        accuracy = diag.sum(axis=1) / conf.sum(axis=(1, 2))
    return {
        "accuracy": np.nan_to_num(accuracy),
        "macro_f1": f1.sum(axis=1) / n_present,
        "macro_recall": recall.sum(axis=1) / n_present,
    }


def interval(values: np.ndarray, confidence: float) -> list[float]:
    """Percentile interval [lo, hi] holding `confidence` of the bootstrap distribution."""
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return [float(lo), float(hi)]


def confidence_intervals(
    y: np.ndarray, pred: np.ndarray, counts: np.ndarray, index: np.ndarray, n_classes: int, confidence: float
) -> dict[str, list[float]]:
    """Patient-bootstrap CI of accuracy, macro-F1 and macro recall for one model's predictions."""
    scores = confusion_metrics(resampled_confusions(y, pred, counts, index, n_classes))
    return {m: interval(scores[m], confidence) for m in METRICS}


def paired_difference(
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    counts: np.ndarray,
    index: np.ndarray,
    n_classes: int,
    confidence: float,
    metric: str = "macro_f1",
) -> list[float]:
    """CI of metric(a) − metric(b) over the SAME patient resamples (a = challenger, b = champion)."""
    a = confusion_metrics(resampled_confusions(y, pred_a, counts, index, n_classes))[metric]
    b = confusion_metrics(resampled_confusions(y, pred_b, counts, index, n_classes))[metric]
    return interval(a - b, confidence)
