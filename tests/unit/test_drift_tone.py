"""The skin-tone test: two statistics in one calibrated family, its level kept on unshifted windows."""

from __future__ import annotations

import numpy as np

from components.monitor_drift.stats import calibrated_min_p, group_windows, monte_carlo_p, window_null
from components.monitor_drift.tone import tone_check, tone_statistics

B = 200


def patients(n_patients: int, seed: int, dark_share: float = 0.37) -> tuple[np.ndarray, np.ndarray]:
    """ITA° of 2-6 photos per patient: a patient's tone (lighter or darker group) ± 3° per photo."""
    rng = np.random.default_rng(seed)
    darker = rng.random(n_patients) < dark_share
    tone = np.where(darker, rng.normal(-5, 18, n_patients), rng.normal(40, 12, n_patients))
    per = rng.integers(2, 7, n_patients)
    ita = np.repeat(tone, per) + rng.normal(0, 3, per.sum())
    return ita, np.repeat(np.arange(n_patients).astype(str), per)


def test_one_statistic_gives_the_plain_monte_carlo_p() -> None:
    null = np.random.default_rng(0).normal(size=(B, 1))
    for observed in (-1.0, 0.5, 2.0, 5.0):
        family, per = calibrated_min_p(np.array([observed]), null)
        assert per[0] == monte_carlo_p(observed, null[:, 0])
        assert abs(family - per[0]) <= 1.5 / B  # the same ranks, one window apart at most


def test_the_family_keeps_its_level_with_two_correlated_statistics() -> None:
    rng = np.random.default_rng(1)
    family, bonferroni = [], []
    for _ in range(20):  # one null of B windows is itself a draw: average over several
        z = rng.normal(size=(B + 200, 1))
        stats = np.hstack([z, 0.7 * z + 0.7 * rng.normal(size=z.shape)])  # correlated like KS and a median shift
        for row in stats[B:]:
            p, per = calibrated_min_p(row, stats[:B])
            family.append(p <= 0.05)
            bonferroni.append(2 * per.min() <= 0.05)
    assert 0.04 <= float(np.mean(family)) <= 0.06
    assert np.mean(family) > np.mean(bonferroni)  # calibrated min-p spends the level Bonferroni leaves unused


def test_a_darker_clinic_is_found_and_the_same_clinic_is_not() -> None:
    ref, groups = patients(500, 2)
    null = window_null(ref, groups, 500, B, np.random.default_rng(3), tone_statistics)
    assert null.shape == (B, 2)
    same, _ = patients(130, 4)
    darker, _ = patients(130, 5, dark_share=0.8)
    assert tone_check(ref, same, null, 0.01).verdict == "no_drift"
    found = tone_check(ref, darker, null, 0.01)
    assert found.verdict == "drift" and found.detail["p_median_shift"] <= 0.01
    assert found.detail["current_median_ita"] < found.detail["reference_median_ita"]


def test_unshifted_whole_patient_windows_false_alarm_at_the_level() -> None:
    ref, groups = patients(500, 6)
    null = window_null(ref, groups, 300, B, np.random.default_rng(7), tone_statistics)
    stream, stream_groups = patients(3000, 8)  # new patients of the same clinic
    windows = group_windows(stream_groups, 300, 300, np.random.default_rng(9))
    alarms = [tone_check(ref, stream[w], null, 0.05).verdict == "drift" for w in windows]
    assert float(np.mean(alarms)) <= 0.10  # 5 % level; the reference's own patient draw adds some
