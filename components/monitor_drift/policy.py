"""The retrain policy: a pure function from a window verdict, history and feedback to a decision.

Kept free of I/O and statistics so every branch is testable and reviewable on its own. Rules:

* acquisition failures (unreadable / near-black images) raise an alert and never retrain: a model
  trained on broken captures would learn the fault, so the capture must be fixed first;
* enough accepted expert feedback retrains whatever the drift says: new labels are new knowledge;
* drift retrains only once it has persisted over `consecutive_windows` windows, this one included,
  so one odd week does not trigger a training run; a window that already led to a retrain ends the
  streak (a cool-down: the same drift is not acted on twice while the new model is being made);
* too few images give no verdict and no retrain, and say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

VERDICTS = ("drift", "no_drift", "insufficient_data")


class PolicyParams(Protocol):
    """The thresholds `decide` needs (MonitorConfig satisfies it)."""

    retrain_feedback_threshold: int
    consecutive_windows: int
    min_window: int
    max_acquisition_failure_share: float


@dataclass(frozen=True)
class WindowResult:
    """What the drift test concluded about one window of current images (plain data)."""

    verdict: str  # one of VERDICTS
    n_current: int  # readable current images
    drifted_share: float = 0.0
    drifted_features: tuple[str, ...] = ()
    n_features: int = 0
    acquisition_alert: bool = False
    acquisition_failure_share: float = 0.0
    n_unreadable: int = 0
    n_dark: int = 0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, found {self.verdict!r}")


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    alert: bool
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"reasons": list(self.reasons)}


def drift_streak(history: Sequence[Mapping[str, Any]]) -> int:
    """Drifted windows at the end of `history` since the last non-drift, alerted or retrain window."""
    streak = 0
    for rec in reversed(history):
        if rec.get("verdict") != "drift" or rec.get("acquisition_alert") or rec.get("retrain"):
            break
        streak += 1
    return streak


def _feedback_reason(accepted: int, threshold: int) -> tuple[bool, str]:
    if accepted >= threshold:
        return True, f"accepted feedback {accepted} ≥ {threshold}: enough reviewed labels to retrain"
    return False, f"accepted feedback {accepted} < {threshold}: not enough reviewed labels yet"


def _drift_reason(window: WindowResult, history: Sequence[Mapping[str, Any]],
                  cfg: PolicyParams) -> tuple[bool, str]:
    share = f"{len(window.drifted_features)}/{window.n_features} features drifted"
    if window.verdict == "insufficient_data":
        return False, (f"insufficient data: {window.n_current} readable image(s) in the window, "
                       f"need {cfg.min_window}; no drift verdict")
    if window.verdict == "no_drift":
        listed = f" ({', '.join(window.drifted_features)})" if window.drifted_features else ""
        return False, f"no drift: {share}{listed}, below the drifted-share threshold"
    streak = drift_streak(history) + 1
    feats = ", ".join(window.drifted_features)
    if streak >= cfg.consecutive_windows:
        return True, (f"drift persisted over {streak} consecutive window(s) (need "
                      f"{cfg.consecutive_windows}): {share} ({feats})")
    return False, (f"drift in {streak} consecutive window(s), need {cfg.consecutive_windows} before "
                   f"retraining: {share} ({feats}); waiting for confirmation")


def decide(window: WindowResult, history: Sequence[Mapping[str, Any]], accepted_feedback: int,
           cfg: PolicyParams) -> RetrainDecision:
    """Retrain and/or alert for this window; `history` = earlier windows' records, oldest first."""
    feedback_due, feedback_reason = _feedback_reason(accepted_feedback, cfg.retrain_feedback_threshold)
    if window.acquisition_alert:
        deferred = " (the feedback retrain is deferred until then)" if feedback_due else ""
        return RetrainDecision(False, True, (
            f"acquisition alert: {window.acquisition_failure_share:.0%} of the window is unreadable "
            f"({window.n_unreadable}) or near-black ({window.n_dark}), above "
            f"{cfg.max_acquisition_failure_share:.0%}: check the camera and the upload path",
            f"no retrain while captures fail: a model would learn the fault{deferred}",
        ))
    drift_due, drift_reason = _drift_reason(window, history, cfg)
    return RetrainDecision(feedback_due or drift_due, False, (feedback_reason, drift_reason))


def history_record(window: WindowResult, decision: RetrainDecision, window_id: str, at: str) -> dict[str, Any]:
    """The entry appended to the history file; `drift_streak` reads verdict, alert and retrain."""
    return {
        "window": window_id, "at": at, "verdict": window.verdict,
        "acquisition_alert": window.acquisition_alert, "drifted_share": window.drifted_share,
        "n_current": window.n_current, "retrain": decision.retrain, "alert": decision.alert,
    }
