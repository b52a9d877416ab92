"""The retrain policy, branch by branch: pure decide() over plain data."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.policy import WindowResult, decide, drift_streak, history_record, last_retrain_at

CFG = MonitorConfig(min_window=20, consecutive_windows=2, retrain_feedback_threshold=50, cooldown_hours=24)
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def window(verdict: str = "drift", alert: bool = False, n: int = 40) -> WindowResult:
    drifted = ("embedding_mmd", "class_mix") if verdict == "drift" else ()
    return WindowResult(
        verdict=verdict,
        n_current=n,
        drifted_checks=drifted,
        check_reasons=tuple(f"{c} p 0.001 vs alpha 0.01" for c in drifted),
        acquisition_alert=alert,
        acquisition_failure_share=0.3 if alert else 0.0,
        n_dark=4 if alert else 0,
        n_wrong_modality=8 if alert else 0,
    )


def rec(verdict: str, hours_ago: float = 1.0, retrain: bool = False, alert: bool = False) -> dict:
    return {
        "verdict": verdict,
        "at": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "retrain": retrain,
        "acquisition_alert": alert,
    }


def test_feedback_threshold_retrains_without_drift() -> None:
    d = decide(window("no_drift"), [], accepted_feedback=50, cfg=CFG, now=NOW)
    assert d.retrain and not d.alert and d.trigger == "feedback"
    assert any("accepted feedback 50 ≥ 50" in r for r in d.reasons)


def test_feedback_below_threshold_does_not_retrain() -> None:
    d = decide(window("no_drift"), [], accepted_feedback=49, cfg=CFG, now=NOW)
    assert not d.retrain and d.trigger is None
    assert d.reasons[0].startswith("accepted feedback 49 < 50") and d.reasons[1].startswith("no drift")


def test_single_drifted_window_waits_for_confirmation() -> None:
    d = decide(window("drift"), [rec("no_drift")], 0, CFG, now=NOW)
    assert not d.retrain and not d.alert
    assert any("drift in 1 consecutive" in r and "waiting for confirmation" in r for r in d.reasons)
    assert any("embedding_mmd" in r for r in d.reasons)  # the reasons say which tests fired


def test_drift_over_two_consecutive_windows_retrains() -> None:
    d = decide(window("drift"), [rec("no_drift", 3), rec("drift", 1)], 0, CFG, now=NOW)
    assert d.retrain and d.trigger == "drift"
    assert any("persisted over 2 consecutive" in r for r in d.reasons)


def test_feedback_and_drift_together() -> None:
    d = decide(window("drift"), [rec("drift")], 80, CFG, now=NOW)
    assert d.retrain and d.trigger == "feedback+drift"


@pytest.mark.parametrize("between, streak", [("no_drift", 0), ("insufficient_data", 1), ("no_reference", 1)])
def test_what_breaks_the_streak(between: str, streak: int) -> None:
    history = [rec("drift", 2), rec(between, 1)]
    assert drift_streak(history) == streak
    assert decide(window("drift"), history, 0, CFG, now=NOW).retrain is (streak + 1 >= 2)


def test_an_alert_or_a_retrain_ends_the_streak() -> None:
    assert drift_streak([rec("drift", 2), rec("drift", 1, alert=True)]) == 0
    assert drift_streak([rec("drift", 30), rec("drift", 26, retrain=True)]) == 0


def test_cooldown_blocks_a_second_retrain_and_says_when() -> None:
    history = [rec("drift", 5, retrain=True), rec("drift", 2)]
    d = decide(window("drift"), history, 500, CFG, now=NOW)
    assert not d.retrain and not d.alert
    assert any(r.startswith("cooldown: the last retrain was 5.0 h ago") and "waits 19.0 h" in r for r in d.reasons)


def test_after_the_cooldown_the_waiting_retrain_happens() -> None:
    history = [rec("drift", 30, retrain=True), rec("drift", 2)]
    d = decide(window("drift"), history, 0, CFG, now=NOW)
    assert d.retrain and d.trigger == "drift"  # the streak kept counting during the cooldown


def test_cooldown_zero_disables_it() -> None:
    d = decide(window("no_drift"), [rec("no_drift", 0.1, retrain=True)], 50, replace(CFG, cooldown_hours=0), now=NOW)
    assert d.retrain


def test_acquisition_alert_alerts_and_never_retrains() -> None:
    d = decide(window("drift", alert=True), [rec("drift")], accepted_feedback=500, cfg=CFG, now=NOW)
    assert d.alert and not d.retrain
    assert any("acquisition alert: 30%" in r and "wrong modality (8)" in r for r in d.reasons)
    assert any("deferred" in r for r in d.reasons)


def test_insufficient_data_does_not_retrain_and_says_why() -> None:
    d = decide(window("insufficient_data", n=5), [rec("drift")], 0, CFG, now=NOW)
    assert not d.retrain and not d.alert
    assert any("insufficient data: 5 usable" in r and "need 20" in r for r in d.reasons)


def test_no_reference_gives_no_drift_verdict_but_feedback_still_counts() -> None:
    d = decide(window("no_reference", n=0), [], 3, CFG, now=NOW)
    assert not d.retrain and any("no reference statistics" in r for r in d.reasons)
    assert decide(window("no_reference", n=0), [], 50, CFG, now=NOW).retrain


def test_single_window_policy_retrains_at_once() -> None:
    assert decide(window("drift"), [], 0, replace(CFG, consecutive_windows=1), now=NOW).retrain


def test_history_record_round_trip() -> None:
    w = window("drift")
    d = decide(w, [rec("drift")], 0, CFG, now=NOW)
    r = history_record(w, d, "w1", NOW.isoformat(), window_end="2025-03-01T11:59:00+00:00")
    assert r["retrain"] and r["drifted_checks"] == ["embedding_mmd", "class_mix"] and r["reasons"]
    assert r["window_end"].startswith("2025-03-01")
    assert last_retrain_at([r]) == NOW
    assert last_retrain_at([rec("drift")]) is None


def test_a_history_record_without_time_is_refused() -> None:
    with pytest.raises(ValueError, match="ISO 'at'"):
        last_retrain_at([{"verdict": "drift", "retrain": True}])


def test_unknown_verdict_is_refused() -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        WindowResult(verdict="maybe", n_current=1)
