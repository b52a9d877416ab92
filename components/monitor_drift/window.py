"""One window against the reference: acquisition check, then every window test, then a verdict.

Acquisition failures (near-black frames, and images of the wrong modality: grey films in a colour
photo stream or colour photos in a grey one, told apart by mean saturation against what the
reference shows) are counted for the alert and left out of the drift tests: a broken capture is
a fault to fix, not a population change to learn. The window is "drift" when any test says so (the
per-test levels are in params.yaml); "insufficient_data" when fewer than `min_window` usable images
remain and the feedback CUSUM did not fire; "no_reference" when there is nothing to compare with.

The current window is a DataFrame with the FEATURES columns and, from the serving store, also
predicted_class, confidence, embedding and model_version (folder mode has image statistics only).
Each test's null distribution (stats.py) depends only on the reference and the window size, so a
caller assessing many windows (benchmarks/drift.py) passes one `cache` dict to compute each once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from components.common.drift_reference import Reference
from components.common.image_stats import FEATURES
from components.common.skin_tone import ITA_COLUMN
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.policy import WindowResult
from components.monitor_drift.stats import (
    DRIFT,
    CheckResult,
    KernelReference,
    class_mix_check,
    class_null,
    confidence_check,
    cusum_check,
    feature_check,
    feature_null,
    ks_null,
    mmd_check,
    mmd_null,
    skipped,
    window_null,
)
from components.monitor_drift.tone import NAME as TONE_CHECK
from components.monitor_drift.tone import tone_check, tone_statistics

MODEL_CHECKS = ("embedding_mmd", "class_mix", "confidence")
IMAGE_CHECKS = ("image_statistics", TONE_CHECK)
_STREAMS = {"features": 1, "kernel": 2, "mmd": 3, "class_mix": 4, "confidence": 5, "mmd_current": 6, "skin_tone": 7}
Cache = dict[tuple[str, int], Any]


def _cached(cache: Cache, name: str, n: int, cfg: MonitorConfig, make: Callable[[np.random.Generator], Any]) -> Any:
    """`make(rng)` once per (name, n); the generator is seeded by (seed, test, n), not by call order."""
    key = (name, n)
    if key not in cache:
        cache[key] = make(np.random.default_rng([cfg.calibration.seed, _STREAMS[name], n]))
    return cache[key]


def groups_of(frame: pd.DataFrame) -> np.ndarray:
    """Patient of each reference row; without a patient_id column every row stands alone."""
    if "patient_id" in frame:
        return frame["patient_id"].astype(str).to_numpy()
    return np.arange(len(frame)).astype(str)


@dataclass(frozen=True)
class Assessment:
    window: WindowResult
    checks: tuple[CheckResult, ...]
    usable: pd.DataFrame  # the window rows the tests ran on (acquisition failures left out)
    per_feature: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def reference_is_grey(ref_images: pd.DataFrame, grey_saturation: float) -> bool:
    """A grey modality (X-ray, CT) when most reference images have (almost) no saturation."""
    return bool((ref_images["saturation"] < grey_saturation).mean() >= 0.5)


def acquisition_masks(cur: pd.DataFrame, ref: Reference | None, cfg: MonitorConfig) -> tuple[np.ndarray, np.ndarray]:
    """(near-black, wrong-modality) masks over the window rows; wrong excludes the near-black ones
    (a black frame is grey too, but it is counted once, as what it is)."""
    dark = (cur["brightness"] < cfg.dark_brightness).to_numpy()
    if ref is None or ref.images.empty:
        return dark, np.zeros(len(cur), dtype=bool)
    grey = (cur["saturation"] < cfg.grey_saturation).to_numpy()
    wrong = ~grey if reference_is_grey(ref.images, cfg.grey_saturation) else grey
    return dark, wrong & ~dark


def acquisition_alert(failures: int, n: int, cfg: MonitorConfig) -> bool:
    """More failed captures than `max_acquisition_failure_share` tolerates, beyond chance: a
    one-sided binomial test at `acquisition_alpha`. A plain "share above the tolerance" cut fires on
    a coin flip when the true share sits at it (severity 0.5 of the drift benchmark: 10 % chest films,
    28–32 % of windows alerted); the test alerts on a few failures in a window that should have
    none, and stays quiet on a share the tolerance allows."""
    if n == 0 or failures == 0:
        return False
    return bool(
        binomtest(failures, n, cfg.max_acquisition_failure_share, alternative="greater").pvalue < cfg.acquisition_alpha
    )


def _model_rows(ref: Reference, cur: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Window rows the model-based tests can use: with outputs, and from the reference's model
    version when it is known (another version's embeddings live in another space)."""
    notes = []
    rows = cur.dropna(subset=["predicted_class", "confidence"])
    version = ref.meta.get("model_version")
    if version is not None and "model_version" in rows:
        other = rows.model_version.astype(str) != str(version)
        if other.any():
            notes.append(
                f"{int(other.sum())} prediction(s) from other model versions than {version} left out "
                "of the model-based tests"
            )
        rows = rows[~other]
    return rows, notes


def model_checks(
    ref: Reference, cur: pd.DataFrame, cfg: MonitorConfig, cache: Cache
) -> tuple[list[CheckResult], list[str]]:
    """Embedding MMD, class mix and confidence shift, each skipped with a reason when it cannot run."""
    if ref.model is None or ref.model.empty:
        return [skipped(n, "the reference has no model outputs (model.parquet)") for n in MODEL_CHECKS], []
    if not {"predicted_class", "confidence"} <= set(cur.columns):
        return [
            skipped(n, "the window has no model outputs (folder mode: image statistics only)") for n in MODEL_CHECKS
        ], []
    rows, notes = _model_rows(ref, cur)
    if len(rows) < cfg.min_window:
        why = f"{len(rows)} prediction(s) with model outputs, need {cfg.min_window}"
        return [skipped(n, why) for n in MODEL_CHECKS], notes
    model, groups, n, count = ref.model, groups_of(ref.model), len(rows), cfg.calibration.windows
    checks = []
    embedded = rows.embedding.dropna() if "embedding" in rows else pd.Series(dtype=object)
    if "embedding" not in model or len(embedded) < cfg.min_window:
        checks.append(skipped("embedding_mmd", f"{len(embedded)} window embedding(s), need {cfg.min_window}"))
    else:
        reference = ref.embeddings()
        assert reference is not None  # "embedding" is in the model rows (checked just above)
        kref = _cached(
            cache, "kernel", 0, cfg, lambda rng: KernelReference.build(reference, groups, cfg.mmd.max_reference, rng)
        )
        size = min(len(embedded), cfg.mmd.max_current)
        null = _cached(cache, "mmd", size, cfg, lambda rng: mmd_null(kref, size, count, rng))
        cur_emb = np.stack([np.asarray(e, dtype=np.float32) for e in embedded])
        rng = np.random.default_rng([cfg.calibration.seed, _STREAMS["mmd_current"], len(cur_emb)])
        checks.append(mmd_check(kref, cur_emb, null, cfg.mmd.alpha, cfg.mmd.max_current, rng))
    labels = model.predicted_class.astype(str)
    classes = sorted(set(labels) | set(rows.predicted_class.astype(str)))
    codes = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    null = _cached(cache, "class_mix", n, cfg, lambda rng: class_null(codes, len(classes), groups, n, count, rng))
    checks.append(
        class_mix_check(labels.tolist(), rows.predicted_class.astype(str).tolist(), null, cfg.class_mix_alpha)
    )
    conf = model.confidence.to_numpy(float)
    null = _cached(cache, "confidence", n, cfg, lambda rng: ks_null(conf, groups, n, count, rng))
    checks.append(confidence_check(conf, rows.confidence.to_numpy(float), null, cfg.confidence_alpha))
    return checks, notes


def feedback_check(reviews: pd.DataFrame | None, cfg: MonitorConfig) -> CheckResult:
    """CUSUM over reviews where the expert set a label and the model had answered, in review order."""
    if reviews is None:
        return skipped("error_cusum", "no reviewed feedback source (folder mode)")
    usable = reviews.dropna(subset=["model_label", "true_label"]).sort_values("reviewed_at", kind="stable")
    return cusum_check(usable.correct.astype(bool).tolist(), cfg.cusum)


def _verdict(ref: Reference | None, checks: list[CheckResult], n_usable: int, cfg: MonitorConfig) -> str:
    if any(c.verdict == DRIFT for c in checks):
        return "drift"
    if ref is None:
        return "no_reference"
    return "insufficient_data" if n_usable < cfg.min_window else "no_drift"


def image_check(
    ref: Reference, usable: pd.DataFrame, cfg: MonitorConfig, cache: Cache
) -> tuple[CheckResult, dict[str, dict[str, Any]]]:
    """KS per image statistic, calibrated over the features on whole-patient reference windows."""
    features = [f for f in ref.features if f in FEATURES]
    rows = usable.dropna(subset=features)
    values, groups, n = ref.images[features].to_numpy(float), groups_of(ref.images), len(rows)
    null = _cached(cache, "features", n, cfg, lambda rng: feature_null(values, groups, n, cfg.calibration.windows, rng))
    return feature_check(ref.images, rows, features, null, cfg.alpha, cfg.min_drifted_share)


def skin_tone_check(ref: Reference, usable: pd.DataFrame, cfg: MonitorConfig, cache: Cache) -> CheckResult:
    """KS and median shift of the per-image ITA°, calibrated on whole-patient reference windows (tone.py); skipped
    when either side has no measured tone (an older reference or store rows, a grey modality)."""
    if ITA_COLUMN not in ref.images:
        return skipped(TONE_CHECK, "the reference has no skin tone (ita column): rebuild it with evaluate_model")
    if reference_is_grey(ref.images, cfg.grey_saturation):
        return skipped(TONE_CHECK, "the reference is a grey modality: no skin tone to compare")
    cur = usable[ITA_COLUMN].to_numpy(float) if ITA_COLUMN in usable else np.array([])
    cur = cur[np.isfinite(cur)]
    if len(cur) < cfg.min_window:
        return skipped(TONE_CHECK, f"{len(cur)} window image(s) with a measured skin tone, need {cfg.min_window}")
    measured = ref.images[np.isfinite(ref.images[ITA_COLUMN].to_numpy(float))]
    values, groups, n = measured[ITA_COLUMN].to_numpy(float), groups_of(measured), len(cur)
    count = cfg.calibration.windows
    null = _cached(cache, "skin_tone", n, cfg, lambda rng: window_null(values, groups, n, count, rng, tone_statistics))
    return tone_check(values, cur, null, cfg.skin_tone_alpha)


def assess_window(
    ref: Reference | None,
    cur: pd.DataFrame,
    cfg: MonitorConfig,
    *,
    n_unreadable: int = 0,
    reviews: pd.DataFrame | None = None,
    cache: Cache | None = None,
) -> Assessment:
    """Every test on the usable rows of `cur`; the verdict and the acquisition alert."""
    cache = {} if cache is None else cache
    cur = cur.dropna(subset=["brightness", "saturation"]).reset_index(drop=True)
    dark, wrong = acquisition_masks(cur, ref, cfg)
    n_files = len(cur) + n_unreadable
    failures = n_unreadable + int(dark.sum()) + int(wrong.sum())
    fail_share = failures / n_files if n_files else 0.0
    usable = cur[~(dark | wrong)]
    per_feature: dict[str, dict[str, Any]] = {}
    checks: list[CheckResult] = []
    notes: list[str] = []
    if ref is None:
        checks += [skipped(n, "no reference") for n in (*IMAGE_CHECKS, *MODEL_CHECKS)]
    elif len(usable) < cfg.min_window:
        why = f"{len(usable)} usable image(s) in the window, need {cfg.min_window}"
        checks += [skipped(n, why) for n in (*IMAGE_CHECKS, *MODEL_CHECKS)]
    else:
        check, per_feature = image_check(ref, usable, cfg, cache)
        checks += [check, skin_tone_check(ref, usable, cfg, cache)]
        model, notes = model_checks(ref, usable, cfg, cache)
        if "patient_id" not in ref.images:
            notes.append(
                "the reference has no patient_id: its calibration windows are single photos, so a window "
                "of whole patients (several photos each) reads as drift more often than the alphas say"
            )
        checks += model
    checks.append(feedback_check(reviews, cfg))
    drifted = [c for c in checks if c.verdict == DRIFT]
    features_drifted = tuple(k for k, v in per_feature.items() if v["drifted"])
    window = WindowResult(
        verdict=_verdict(ref, checks, len(usable), cfg),
        n_current=len(usable),
        drifted_share=len(features_drifted) / len(per_feature) if per_feature else 0.0,
        drifted_features=features_drifted,
        n_features=len(per_feature),
        acquisition_alert=acquisition_alert(failures, n_files, cfg),
        acquisition_failure_share=fail_share,
        n_unreadable=n_unreadable,
        n_dark=int(dark.sum()),
        n_wrong_modality=int(wrong.sum()),
        drifted_checks=tuple(c.name for c in drifted),
        check_reasons=tuple(c.reason for c in drifted),
    )
    counts = {
        "current_images": len(cur),
        "usable": len(usable),
        "unreadable": n_unreadable,
        "dark": int(dark.sum()),
        "wrong_modality": int(wrong.sum()),
        "acquisition_failure_share": fail_share,
        "reference_images": 0 if ref is None else len(ref.images),
        "reference_predictions": 0 if ref is None or ref.model is None else len(ref.model),
    }
    return Assessment(window, tuple(checks), usable, per_feature, counts, tuple(notes))
