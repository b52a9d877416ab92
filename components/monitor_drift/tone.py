"""The skin-tone test: has the window's mix of patient skin tones moved away from the reference's?

A model that learnt on light skin fails silently on dark skin, and a clinic whose patients change
is invisible in brightness or colour means, which lighting and lesions move as much (the
image-statistics test found 2 % of windows of 500 in which half the lighter-skinned patients were
gone). So the per-image ITA° (components/common/skin_tone.py) gets its own test, calibrated like the
others on whole-patient reference windows (skin tone is the most patient-clustered quantity there
is), at `skin_tone_alpha`. Two statistics, one family p (stats.calibrated_min_p):

- the two-sample KS statistic of ITA°: any change of the distribution's shape;
- the shift of the median ITA°: the patients as a whole getting darker or lighter.

On whole-patient windows with half the lighter-skinned patients gone (benchmarks/tone_power.py, 4
seeds of reference and clinic) KS alone flagged 53 % of windows of 500 and 79 % of 1,000, the
median shift alone 68 % / 93 %, the two as one family 66 % / 91 % (an oracle that knows each
patient's tone: 67 % / 90 %): the median carries a shift of the whole population, KS keeps a change
of shape with the same median in view.

The Del Bino category mix of both sides is reported with it, because that is what a clinician reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from components.common.skin_tone import TONE_NAMES, tone_mix
from components.monitor_drift.stats import DRIFT, NO_DRIFT, CheckResult, calibrated_min_p, ks_statistics, size_scale

NAME = "skin_tone"


def _mix_text(mix: dict[str, float]) -> str:
    return ", ".join(f"{name} {mix[name]:.0%}" for name in TONE_NAMES if mix[name] > 0) or "none measured"


def tone_statistics(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """[KS statistic, |median shift| in degrees] of the window's ITA° against the reference's, both
    times stats.size_scale, so that windows tested against the rest of the reference calibrate a
    window tested against all of it."""
    ks = ks_statistics(ref.reshape(-1, 1), cur.reshape(-1, 1))[0]
    return np.array([ks, abs(float(np.median(cur)) - float(np.median(ref)))]) * size_scale(len(ref), len(cur))


def tone_check(ref: np.ndarray, cur: np.ndarray, null: np.ndarray, alpha: float) -> CheckResult:
    """KS and median shift of ITA°, window vs reference; `null` holds tone_statistics of the
    patient windows (NaNs left out of both sides)."""
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    observed = tone_statistics(ref, cur)
    p, (p_ks, p_median) = calibrated_min_p(observed, null)
    ks = float(observed[0] / size_scale(len(ref), len(cur)))
    mixes = tone_mix(ref), tone_mix(cur)
    medians = float(np.median(ref)), float(np.median(cur))
    return CheckResult(
        NAME,
        DRIFT if p <= alpha else NO_DRIFT,
        f"skin tone: median ITA {medians[0]:.1f}° → {medians[1]:.1f}° (p {p_median:.3g}), KS {ks:.3g} "
        f"(p {p_ks:.3g}); patient-calibrated p {p:.3g} vs alpha {alpha:g}; mix {_mix_text(mixes[1])} "
        f"(reference {_mix_text(mixes[0])})",
        ks,
        p,
        alpha,
        {
            "reference_median_ita": medians[0],
            "current_median_ita": medians[1],
            "ks_statistic": ks,
            "p_ks": float(p_ks),
            "p_median_shift": float(p_median),
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
