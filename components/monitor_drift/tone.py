"""The skin-tone test: has the window's mix of patient skin tones moved away from the reference's?

A model that learnt on light skin fails silently on dark skin, and a clinic whose patients change
is invisible in brightness or colour means, which lighting and lesions move as much (the
image-statistics test found 2 % of windows of 500 in which half the lighter-skinned patients were
gone). So the per-image ITA° (components/common/skin_tone.py) gets its own test: the two-sample KS
statistic of its distribution, calibrated like the others on whole-patient reference windows (skin
tone is the most patient-clustered quantity there is), at `skin_tone_alpha`. The Del Bino category
mix of both sides is reported with it, because that is what a clinician reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from components.common.skin_tone import TONE_NAMES, tone_mix
from components.monitor_drift.stats import DRIFT, NO_DRIFT, CheckResult, ks_statistics, monte_carlo_p

NAME = "skin_tone"


def _mix_text(mix: dict[str, float]) -> str:
    return ", ".join(f"{name} {mix[name]:.0%}" for name in TONE_NAMES if mix[name] > 0) or "none measured"


def tone_check(ref: np.ndarray, cur: np.ndarray, null: np.ndarray, alpha: float) -> CheckResult:
    """KS statistic of ITA°, window vs reference, p from the patient-window null (NaNs left out)."""
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    stat = float(ks_statistics(ref.reshape(-1, 1), cur.reshape(-1, 1))[0])
    p = monte_carlo_p(stat, null)
    mixes = tone_mix(ref), tone_mix(cur)
    medians = float(np.median(ref)), float(np.median(cur))
    return CheckResult(
        NAME,
        DRIFT if p <= alpha else NO_DRIFT,
        f"skin tone (ITA°) KS {stat:.3g}, patient-calibrated p {p:.3g} vs alpha {alpha:g}; median ITA "
        f"{medians[0]:.1f}° → {medians[1]:.1f}°; mix {_mix_text(mixes[1])} (reference {_mix_text(mixes[0])})",
        stat,
        p,
        alpha,
        {
            "reference_median_ita": medians[0],
            "current_median_ita": medians[1],
            "reference_mix": mixes[0],
            "current_mix": mixes[1],
            "n_reference": int(len(ref)),
            "n_current": int(len(cur)),
            "null_windows": len(null),
        },
    )


def tone_summary(checks: Sequence[CheckResult]) -> dict[str, Any]:
    """The skin-tone test in a few fields, for drift.json and decision.json (a clinician's question)."""
    check = next((c for c in checks if c.name == NAME), None)
    if check is None:
        return {"verdict": "skipped", "reason": "not run"}
    return {
        "verdict": check.verdict,
        "p_value": check.p_value,
        "alpha": check.threshold,
        "reason": check.reason,
        **check.detail,
    }
