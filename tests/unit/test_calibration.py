import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from components.common.errors import ConfigError
from components.common.metrics import classification_metrics, probability_metrics
from components.evaluate_model.calibration import (
    calibrated,
    ece_noise_floor,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
)

CLASSES = ("a", "b", "c")


def sampled(n: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true label distribution, multiplied by `scale` (> 1: over-confident)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 2.0, size=(n, 3))
    p = softmax(true, axis=1)
    y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return true * scale, y


def test_ece_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    y = np.array([0, 1, 0, 1, 1])
    # bins (0, .5], (.5, 1]: {0.5 wrong} → |0 − .5|; {.9 ok, .8 wrong, .6 ok, .7 ok} → |.75 − .75| = 0
    assert expected_calibration_error(probs, y, 2) == pytest.approx(0.5 * 1 / 5)
    # 10 bins: .5 wrong (bin 4), .6 ok, .7 ok, .8 wrong, .9 ok → gaps .5, .4, .3, .8, .1, each 1/5
    assert expected_calibration_error(probs, y, 10) == pytest.approx((0.5 + 0.4 + 0.3 + 0.8 + 0.1) / 5)


@pytest.mark.parametrize(
    ("probs", "y", "expected"),
    [
        (np.array([[1.0, 0.0]] * 4), np.array([0, 1, 0, 1]), 0.5),  # certain and half wrong
        (np.array([[1.0, 0.0]] * 4), np.array([0, 0, 0, 0]), 0.0),  # certain and right
        (np.array([[0.0, 1.0]] * 2), np.array([0, 0]), 1.0),  # certain and always wrong: the maximum
    ],
)
def test_ece_extremes(probs: np.ndarray, y: np.ndarray, expected: float) -> None:
    assert expected_calibration_error(probs, y, 15) == pytest.approx(expected)


def test_ece_is_small_for_a_calibrated_model_and_bins_cover_every_sample() -> None:
    logits, y = sampled(20000, 1.0, seed=0)
    probs = softmax(logits, axis=1)
    assert expected_calibration_error(probs, y, 15) < 0.02
    stats = reliability_bins(probs, y, 15)
    assert stats.count.sum() == len(y) and len(stats.edges) == 16


def test_ece_noise_floor_is_the_ece_of_outcomes_drawn_from_the_confidences() -> None:
    """One draw, replayed by hand: each sample right with probability = its confidence, labelled
    accordingly, scored by expected_calibration_error — the same number."""
    probs = softmax(sampled(300, 1.0, seed=1)[0], axis=1)
    right = np.random.default_rng(7).random((1, len(probs)))[0] < probs.max(axis=1)
    top = probs.argmax(axis=1)
    y = np.where(right, top, (top + 1) % 3)
    assert ece_noise_floor(probs, 15, 1, seed=7) == pytest.approx(expected_calibration_error(probs, y, 15))


def test_a_calibrated_model_scores_about_its_noise_floor_which_shrinks_with_the_test_set() -> None:
    """On 222 samples (the demo's test split) a perfectly calibrated model's ECE averages its floor,
    several points above zero; on 20,000 the floor is near zero."""
    measured, floors = [], []
    for seed in range(40):
        logits, y = sampled(222, 1.0, seed=seed)
        probs = softmax(logits, axis=1)
        measured.append(expected_calibration_error(probs, y, 15))
        floors.append(ece_noise_floor(probs, 15, 200, seed=0))
    assert np.mean(floors) > 0.04
    assert np.mean(measured) == pytest.approx(np.mean(floors), rel=0.15)
    assert ece_noise_floor(softmax(sampled(20000, 1.0, seed=0)[0], axis=1), 15, 20, seed=0) < 0.015


def test_bins_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="evaluate_model.calibration_bins"):
        expected_calibration_error(np.array([[0.6, 0.4]]), np.array([0]), 0)


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_fit_temperature_recovers_the_scale(scale: float) -> None:
    logits, y = sampled(6000, scale, seed=1)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(scale, rel=0.1)
    assert fit_temperature(logits, y) == t  # deterministic
    grid = np.exp(np.linspace(np.log(0.1), np.log(10), 400))
    assert nll(logits, y, t) <= min(nll(logits, y, g) for g in grid) + 1e-6


def test_temperature_fitted_on_val_improves_test_calibration_and_keeps_predictions() -> None:
    val_logits, val_y = sampled(3000, 4.0, seed=2)
    test_logits, test_y = sampled(3000, 4.0, seed=3)
    t = fit_temperature(val_logits, val_y)
    before = expected_calibration_error(softmax(test_logits, axis=1), test_y, 15)
    after = expected_calibration_error(calibrated(test_logits, t), test_y, 15)
    assert t > 2.0 and after < before / 2
    assert (calibrated(test_logits, t).argmax(1) == test_logits.argmax(1)).all()


def test_fit_temperature_without_validation_samples_is_identity() -> None:
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_roc_auc_matches_sklearn_one_vs_rest() -> None:
    logits, y = sampled(500, 1.0, seed=4)
    probs = softmax(logits, axis=1)
    got = probability_metrics(y, probs, CLASSES)
    assert got["roc_auc_macro"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert got["roc_auc"]["a"] == pytest.approx(roc_auc_score(y == 0, probs[:, 0]))


def test_roc_auc_of_an_absent_class_is_none_and_left_out_of_the_macro() -> None:
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    y = np.array([0, 1, 0, 1])
    got = probability_metrics(y, probs, CLASSES)
    assert got["roc_auc"] == {"a": 1.0, "b": 1.0, "c": None} and got["roc_auc_macro"] == 1.0
    only_one = probability_metrics(np.array([0, 0]), probs[:2], CLASSES)
    assert only_one == {"roc_auc": {"a": None, "b": None, "c": None}, "roc_auc_macro": None}


def test_classification_metrics_adds_auc_only_when_given_probabilities() -> None:
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.4, 0.5, 0.1]])
    y = np.array([0, 1, 0])
    plain = classification_metrics(y, probs.argmax(1), CLASSES)
    assert "roc_auc_macro" not in plain and "roc_auc" not in plain["per_class"]["a"]
    full = classification_metrics(y, probs.argmax(1), CLASSES, probs)
    assert full["roc_auc_macro"] == 1.0 and full["per_class"]["c"]["roc_auc"] is None
    assert {k: v for k, v in full.items() if k != "per_class" and k != "roc_auc_macro"} == {
        k: v for k, v in plain.items() if k != "per_class"
    }
