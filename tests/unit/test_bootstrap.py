import time

import numpy as np
import pytest

from components.common.bootstrap import (
    METRICS,
    BootstrapConfig,
    confidence_intervals,
    confusion_metrics,
    paired_difference,
    patient_counts,
    resampled_confusions,
    resampling_units,
)
from components.common.errors import ConfigError
from components.common.metrics import classification_metrics

CLASSES = ("a", "b", "c", "d", "e")


def predictions(n: int, n_patients: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, predictions right with probability `accuracy`, and a patient per sample."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    wrong = rng.random(n) > accuracy
    pred = np.where(wrong, (y + rng.integers(1, len(CLASSES), n)) % len(CLASSES), y)
    patients = np.array([f"p{i:03d}" for i in rng.integers(0, n_patients, n)])
    return y, pred, patients


@pytest.mark.parametrize(("seed", "n_classes_used"), [(0, 5), (1, 3), (2, 1)])
def test_unit_weights_reproduce_classification_metrics(seed: int, n_classes_used: int) -> None:
    """The vectorised metrics score the identity resample exactly as the gate's metrics do,
    including classes absent from the truth (left out of the macro means)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes_used, 120)
    pred = rng.integers(0, len(CLASSES), 120)
    index = np.arange(120)
    got = confusion_metrics(resampled_confusions(y, pred, np.ones((1, 120)), index, len(CLASSES)))
    want = classification_metrics(y, pred, CLASSES)
    for m in METRICS:
        assert got[m][0] == pytest.approx(want[m], abs=1e-12)


def test_resamples_draw_whole_patients_and_are_seeded() -> None:
    _, _, patients = predictions(300, 60, 0.8, seed=3)
    counts, index = patient_counts(patients, BootstrapConfig(n_resamples=200, seed=5))
    assert counts.shape == (200, len(set(patients))) and (counts.sum(axis=1) == counts.shape[1]).all()
    assert (np.unique(patients)[index] == patients).all()
    again, _ = patient_counts(patients, BootstrapConfig(n_resamples=200, seed=5))
    other, _ = patient_counts(patients, BootstrapConfig(n_resamples=200, seed=6))
    assert (again == counts).all() and not (other == counts).all()


def test_intervals_contain_the_point_estimate_and_stay_in_range() -> None:
    y, pred, patients = predictions(300, 60, 0.75, seed=4)
    cfg = BootstrapConfig()
    ci = confidence_intervals(y, pred, *patient_counts(patients, cfg), len(CLASSES), cfg.confidence)
    point = classification_metrics(y, pred, CLASSES)
    for m in METRICS:
        lo, hi = ci[m]
        assert 0.0 <= lo <= point[m] <= hi <= 1.0 and hi - lo > 0.02


def test_patient_clustering_widens_the_interval() -> None:
    """12 patients × 25 patches, each patient all-right or all-wrong: the patches are not 300
    independent cases, and resampling patients says so; resampling patches would not."""
    patients = np.repeat([f"p{i}" for i in range(12)], 25)
    y = np.zeros(300, dtype=int)
    pred = np.where(np.repeat(np.arange(12) < 9, 25), 0, 1)
    cfg = BootstrapConfig(n_resamples=2000)
    by_patient = confidence_intervals(y, pred, *patient_counts(patients, cfg), len(CLASSES), 0.95)["accuracy"]
    by_patch = confidence_intervals(y, pred, *patient_counts(np.arange(300).astype(str), cfg), len(CLASSES), 0.95)[
        "accuracy"
    ]
    assert by_patient[1] - by_patient[0] > 3 * (by_patch[1] - by_patch[0])


def test_paired_difference() -> None:
    y, champion, patients = predictions(300, 60, 0.7, seed=7)
    boot = patient_counts(patients, BootstrapConfig())
    assert paired_difference(y, champion, champion, *boot, len(CLASSES), 0.95) == [0.0, 0.0]
    better = champion.copy()
    better[:60] = y[:60]  # fixes some of the champion's mistakes, breaks nothing
    lo, hi = paired_difference(y, better, champion, *boot, len(CLASSES), 0.95)
    assert 0.0 <= lo < hi
    # Pairing cancels the shared case-mix: resampling the two models independently is far noisier.
    a = confusion_metrics(resampled_confusions(y, better, *boot, len(CLASSES)))["macro_f1"]
    b = confusion_metrics(
        resampled_confusions(y, champion, *patient_counts(patients, BootstrapConfig(seed=1)), len(CLASSES))
    )["macro_f1"]
    unpaired = np.quantile(a - b, [0.025, 0.975])
    assert unpaired[1] - unpaired[0] > 2 * (hi - lo)


def test_thousand_resamples_on_300_samples_is_fast() -> None:
    y, pred, patients = predictions(300, 80, 0.8, seed=8)
    cfg = BootstrapConfig(n_resamples=1000)
    start = time.perf_counter()
    boot = patient_counts(patients, cfg)
    confidence_intervals(y, pred, *boot, len(CLASSES), cfg.confidence)
    paired_difference(y, pred, pred[::-1], *boot, len(CLASSES), cfg.confidence)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("cfg", "key"), [(BootstrapConfig(n_resamples=0), "n_resamples"), (BootstrapConfig(confidence=1.0), "confidence")]
)
def test_bad_config_names_the_key(cfg: BootstrapConfig, key: str) -> None:
    with pytest.raises(ConfigError, match=f"evaluate_model.bootstrap.{key}"):
        patient_counts(["p1"], cfg)


def test_resampling_units_are_split_groups_when_the_table_has_them(tmp_path) -> None:
    """Near-duplicate photos of two 'patients' are one unit: drawn together or not at all."""
    import pandas as pd

    patients = ["p1", "p2", "p3", "p1"]
    pd.DataFrame({"patient_id": ["p1", "p2", "p3"], "split": "test"}).to_parquet(tmp_path / "patches.parquet")
    assert resampling_units(patients, tmp_path) == patients  # older table: patients
    pd.DataFrame({"patient_id": ["p1", "p2", "p3"], "split_group": ["p1", "p1", "p3"], "split": "test"}).to_parquet(
        tmp_path / "patches.parquet"
    )
    units = resampling_units(patients, tmp_path)
    assert units == ["p1", "p1", "p3", "p1"]
    counts, index = patient_counts(units, BootstrapConfig(n_resamples=50))
    assert counts.shape == (50, 2) and list(index) == [0, 0, 1, 0]
