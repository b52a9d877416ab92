"""The retrain policy: a pure function from a window verdict, history, feedback and time to a decision.

Kept free of I/O and statistics so every branch is testable and reviewable on its own. Rules, in order:

* acquisition failures (unreadable, near-black or wrong-modality images) raise an alert and never
  retrain: a model trained on broken captures would learn the fault, so the capture must be fixed first;
* enough accepted expert feedback since the last retrain retrains whatever the drift says: new
  labels are new knowledge;
* drift retrains only once it has persisted over `consecutive_windows` assessed windows, this one
  included, so one odd window does not trigger a training run. Windows without a verdict (too few
  images, no reference yet) neither extend nor break the streak; a no-drift window, an alert or a
  retrain ends it;
* cooldown: no second retrain within `cooldown_hours` of the last one, whatever triggered it. Time,
  not a count of windows, because schedules change (`--every 1h` or a daily Kubeflow run) and "at
  most one training run a day" is what an operator means. A due retrain waits, it is not dropped:
  the feedback count and the drift streak carry on and trigger once the cooldown is over;
* no reference statistics yet (no champion): no drift verdict, the feedback rule still applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

VERDICTS = ("drift", "no_drift", "insufficient_data", "no_reference")
NEUTRAL = ("insufficient_data", "no_reference")  # no verdict: the streak is left as it is


class PolicyParams(Protocol):
    """The thresholds `decide` needs (MonitorConfig satisfies it)."""

    @property
    def retrain_feedback_threshold(self) -> int: ...
    @property
    def consecutive_windows(self) -> int: ...
    @property
    def cooldown_hours(self) -> float: ...
    @property
    def min_window(self) -> int: ...
    @property
    def max_acquisition_failure_share(self) -> float: ...


@dataclass(frozen=True)
class WindowResult:
    """What the window tests concluded about one window of current images (plain data)."""

    verdict: str  # one of VERDICTS
    n_current: int  # images the tests ran on (readable, not acquisition failures)
    drifted_share: float = 0.0  # image-statistics test: share of features drifted
    drifted_features: tuple[str, ...] = ()
    n_features: int = 0
    acquisition_alert: bool = False
    acquisition_failure_share: float = 0.0
    n_unreadable: int = 0
    n_dark: int = 0
    n_wrong_modality: int = 0
    drifted_checks: tuple[str, ...] = ()  # names of the tests that said drift
    check_reasons: tuple[str, ...] = ()  # their reasons, same order

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, found {self.verdict!r}")


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    alert: bool
    reasons: tuple[str, ...]
    trigger: str | None = None  # feedback | drift | feedback+drift when retrain is true

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"reasons": list(self.reasons)}


def _when(record: Mapping[str, Any]) -> datetime:
    """A history record's time (UTC); records are written by `history_record`, always with `at`."""
    try:
        at = datetime.fromisoformat(str(record["at"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"history record without a valid ISO 'at' time: {dict(record)}") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def last_retrain_at(history: Sequence[Mapping[str, Any]]) -> datetime | None:
    """When the policy last decided to retrain (None: never). Feedback is counted from then."""
    for rec in reversed(history):
        if rec.get("retrain"):
            return _when(rec)
    return None


def drift_streak(history: Sequence[Mapping[str, Any]]) -> int:
    """Drifted windows at the end of `history`, skipping windows without a verdict, back to the
    last no-drift, alerted or retrain window."""
    streak = 0
    for rec in reversed(history):
        if rec.get("verdict") in NEUTRAL and not rec.get("retrain") and not rec.get("acquisition_alert"):
            continue
        if rec.get("verdict") != "drift" or rec.get("acquisition_alert") or rec.get("retrain"):
            break
        streak += 1
    return streak


def _feedback_reason(accepted: int, threshold: int) -> tuple[bool, str]:
    if accepted >= threshold:
        return True, f"accepted feedback {accepted} ≥ {threshold} since the last retrain: enough reviewed labels"
    return False, f"accepted feedback {accepted} < {threshold} since the last retrain: not enough reviewed labels yet"


def _drift_reason(window: WindowResult, history: Sequence[Mapping[str, Any]], cfg: PolicyParams) -> tuple[bool, str]:
    if window.verdict == "no_reference":
        return False, "no reference statistics (no champion model or reference yet): drift not assessed"
    if window.verdict == "insufficient_data":
        return False, (
            f"insufficient data: {window.n_current} usable image(s) in the window, "
            f"need {cfg.min_window}; no drift verdict"
        )
    if window.verdict == "no_drift":
        listed = f" ({', '.join(window.drifted_features)})" if window.drifted_features else ""
        return False, f"no drift: no window test fired; {len(window.drifted_features)} feature(s) drifted{listed}"
    streak = drift_streak(history) + 1
    what = f"{', '.join(window.drifted_checks) or 'drift'} — {'; '.join(window.check_reasons)}"
    if streak >= cfg.consecutive_windows:
        return True, (f"drift persisted over {streak} consecutive window(s) (need {cfg.consecutive_windows}): {what}")
    return False, (
        f"drift in {streak} consecutive window(s), need {cfg.consecutive_windows} before retraining: "
        f"{what}; waiting for confirmation"
    )


def _cooldown(history: Sequence[Mapping[str, Any]], cfg: PolicyParams, now: datetime) -> str | None:
    """Why a due retrain must wait, or None when the last retrain is long enough ago (or never)."""
    last = last_retrain_at(history)
    if last is None:
        return None
    hours = (now - last).total_seconds() / 3600
    if hours >= cfg.cooldown_hours:
        return None
    return (
        f"cooldown: the last retrain was {hours:.1f} h ago ({last.isoformat(timespec='seconds')}), under "
        f"{cfg.cooldown_hours:g} h; the due retrain waits {cfg.cooldown_hours - hours:.1f} h more"
    )


def decide(
    window: WindowResult,
    history: Sequence[Mapping[str, Any]],
    accepted_feedback: int,
    cfg: PolicyParams,
    *,
    now: datetime,
) -> RetrainDecision:
    """Retrain and/or alert for this window. `history` = earlier windows' records, oldest first;
    `accepted_feedback` = accepted reviews since the last retrain; `now` = this window's time (UTC)."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    feedback_due, feedback_reason = _feedback_reason(accepted_feedback, cfg.retrain_feedback_threshold)
    if window.acquisition_alert:
        deferred = " (the feedback retrain is deferred until then)" if feedback_due else ""
        return RetrainDecision(
            False,
            True,
            (
                f"acquisition alert: {window.acquisition_failure_share:.0%} of the window is unreadable "
                f"({window.n_unreadable}), near-black ({window.n_dark}) or of the wrong modality "
                f"({window.n_wrong_modality}), significantly above the {cfg.max_acquisition_failure_share:.0%} "
                "tolerated: check the camera, "
                "the upload path and what is being sent",
                f"no retrain while captures fail: a model would learn the fault{deferred}",
            ),
        )
    drift_due, drift_reason = _drift_reason(window, history, cfg)
    reasons = (feedback_reason, drift_reason)
    if not (feedback_due or drift_due):
        return RetrainDecision(False, False, reasons)
    waiting = _cooldown(history, cfg, now)
    if waiting is not None:
        return RetrainDecision(False, False, (*reasons, waiting))
    trigger = "+".join(name for name, due in (("feedback", feedback_due), ("drift", drift_due)) if due)
    return RetrainDecision(True, False, reasons, trigger)


def history_record(
    window: WindowResult, decision: RetrainDecision, window_id: str, at: str, **extra: Any
) -> dict[str, Any]:
    """The entry appended to the history file; `drift_streak` and `last_retrain_at` read verdict,
    alert, retrain and at. `extra` carries mode-specific keys (store mode: window_end)."""
    return {
        "window": window_id,
        "at": at,
        "verdict": window.verdict,
        "acquisition_alert": window.acquisition_alert,
        "drifted_share": window.drifted_share,
        "drifted_checks": list(window.drifted_checks),
        "n_current": window.n_current,
        "retrain": decision.retrain,
        "alert": decision.alert,
        "trigger": decision.trigger,
        "reasons": list(decision.reasons),
        **extra,
    }
