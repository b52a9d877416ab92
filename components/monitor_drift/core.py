"""Compare a window of current images with the training images, report, decide, remember.

Reference = the unique raw images behind the TRAIN split of a crop_patches output: what the model
actually learned from. The decision is our own per-feature two-sample KS test with a Bonferroni
correction (reviewable numbers in `drift.json`); Evidently only renders `drift_report.html` for
humans, configured with the same test and threshold so both agree. Each window's verdict is
appended to a history file so "drift over N consecutive windows" works across scheduled runs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from components.common.errors import ConfigError, DataError
from components.common.io import read_json, write_json
from components.common.params import params_hash
from components.monitor_drift.features import FEATURES, FeatureTable, features_frame, list_images
from components.monitor_drift.policy import RetrainDecision, WindowResult, decide, history_record

DRIFT = "drift.json"
REPORT_HTML = "drift_report.html"
DECISION = "decision.json"
_MAX_LISTED = 50  # unreadable files named in drift.json; the count is always exact


@dataclass(frozen=True)
class MonitorConfig:
    """The `monitor_drift` section of params.yaml."""

    alpha: float = 0.05  # family-wise; each feature is tested at alpha / n_features
    min_drifted_share: float = 0.3
    min_window: int = 30
    retrain_feedback_threshold: int = 50
    consecutive_windows: int = 2
    dark_brightness: float = 20.0  # mean luma (0-255) below which an image is near-black
    max_acquisition_failure_share: float = 0.1
    max_side: int = 256

    def __post_init__(self) -> None:
        checks = {
            "alpha": 0 < self.alpha < 1,
            "min_drifted_share": 0 < self.min_drifted_share <= 1,
            "min_window": self.min_window >= 2,
            "retrain_feedback_threshold": self.retrain_feedback_threshold >= 1,
            "consecutive_windows": self.consecutive_windows >= 1,
            "dark_brightness": 0 <= self.dark_brightness < 255,
            "max_acquisition_failure_share": 0 <= self.max_acquisition_failure_share < 1,
            "max_side": self.max_side >= 16,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"monitor_drift: out-of-range value(s) for {bad}: {asdict(self)}")


def reference_paths(reference_dir: Path, source_dir: Path) -> list[Path]:
    """Unique raw images of the train split, from `patches.parquet` rel_path under `source_dir`."""
    table = reference_dir / "patches.parquet"
    if not table.is_file():
        raise DataError(table, "not found; --reference must be a crop_patches output folder")
    patches = pd.read_parquet(table)
    missing = {"rel_path", "split"} - set(patches.columns)
    if missing:
        raise DataError(table, f"missing column(s) {sorted(missing)}; found {list(patches.columns)}")
    rels = sorted(set(patches.loc[patches["split"] == "train", "rel_path"].astype(str)))
    if not rels:
        raise DataError(table, "no train-split rows: nothing to use as the drift reference")
    if not source_dir.is_dir():
        raise DataError(source_dir, "source folder (raw images of the reference) does not exist")
    return [source_dir / rel for rel in rels]


def ks_features(ref: pd.DataFrame, cur: pd.DataFrame, alpha: float) -> dict[str, dict[str, Any]]:
    """Two-sample KS per feature at the Bonferroni level alpha / n_features (p ≤ level: drifted)."""
    level = alpha / len(FEATURES)
    out: dict[str, dict[str, Any]] = {}
    for name in FEATURES:
        r, c = ref[name].to_numpy(float), cur[name].to_numpy(float)
        res = ks_2samp(r, c)
        p = float(res.pvalue)
        out[name] = {"statistic": float(res.statistic), "p_value": p, "drifted": bool(p <= level),
                     "reference_median": float(np.median(r)), "current_median": float(np.median(c))}
    return out


def assess(ref: FeatureTable, cur: FeatureTable, cfg: MonitorConfig) -> tuple[WindowResult, dict[str, Any]]:
    """The window verdict plus the per-feature table; acquisition failures are judged separately."""
    n_files = len(cur.frame) + len(cur.unreadable)
    n_dark = int((cur.frame["brightness"] < cfg.dark_brightness).sum())
    fail_share = (len(cur.unreadable) + n_dark) / n_files if n_files else 0.0
    per_feature: dict[str, Any] = {}
    drifted: tuple[str, ...] = ()
    if len(cur.frame) < cfg.min_window:
        verdict, share = "insufficient_data", 0.0
    else:
        per_feature = ks_features(ref.frame, cur.frame, cfg.alpha)
        drifted = tuple(k for k, v in per_feature.items() if v["drifted"])
        share = len(drifted) / len(FEATURES)
        verdict = "drift" if share >= cfg.min_drifted_share else "no_drift"
    window = WindowResult(
        verdict=verdict, n_current=len(cur.frame), drifted_share=share, drifted_features=drifted,
        n_features=len(FEATURES), acquisition_alert=fail_share > cfg.max_acquisition_failure_share,
        acquisition_failure_share=fail_share, n_unreadable=len(cur.unreadable), n_dark=n_dark,
    )
    return window, per_feature


def render_report(ref: pd.DataFrame, cur: pd.DataFrame, cfg: MonitorConfig, window: WindowResult,
                  path: Path) -> None:
    """Evidently's drift report with our test and level, or a short page when it cannot run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if len(cur) < 2 or len(ref) < 2:
        tmp.write_text(
            "<!doctype html><html><head><meta charset='utf-8'><title>LesionOps drift</title></head><body>"
            f"<h1>No drift report</h1><p>{escape(window.verdict)}: {len(cur)} readable current and "
            f"{len(ref)} reference image(s); at least 2 of each are needed.</p></body></html>\n",
            encoding="utf-8")
    else:
        # Imported here: evidently takes ~10 s to import, and only this function needs it.
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        cols = list(FEATURES)
        definition = DataDefinition(numerical_columns=cols)  # ints like width would read as categories
        preset = DataDriftPreset(columns=cols, method="ks", threshold=cfg.alpha / len(cols),
                                 drift_share=cfg.min_drifted_share)
        # Constant columns (one camera, one resolution) make evidently's correlations divide by 0.
        with np.errstate(all="ignore"):
            snapshot = Report([preset]).run(
                current_data=Dataset.from_pandas(cur[cols], data_definition=definition),
                reference_data=Dataset.from_pandas(ref[cols], data_definition=definition))
        snapshot.save_html(str(tmp))  # evidently writes only for a str; a Path is silently ignored
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"evidently did not write {tmp}")
    os.replace(tmp, path)


def load_history(path: Path | None) -> list[dict[str, Any]]:
    """Earlier windows' records (oldest first); a missing file is the first run."""
    if path is None or not path.exists():
        return []
    try:
        history = read_json(path)
    except ValueError as exc:
        raise DataError(path, f"history is not valid JSON ({exc})") from exc
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise DataError(path, "history must be a JSON list of window records")
    return history


def run(cfg: MonitorConfig, reference_dir: Path, source_dir: Path, current_dir: Path, out_dir: Path,
        history_file: Path | None = None, accepted_feedback: int = 0) -> dict[str, Any]:
    """Assess `current_dir` against the reference; write drift.json, the HTML report, decision.json."""
    if accepted_feedback < 0:
        raise ConfigError(f"--accepted-feedback must be ≥ 0, found {accepted_feedback}")
    history = load_history(history_file)  # read first: a corrupt history fails before any work
    current_files = list_images(current_dir)
    ref = features_frame(reference_paths(reference_dir, source_dir), cfg.max_side)
    if ref.frame.empty:
        raise DataError(reference_dir, f"none of the {len(ref.unreadable)} reference images is readable "
                        f"under {source_dir}; first problem: {ref.unreadable[0] if ref.unreadable else '-'}")
    cur = features_frame(current_files, cfg.max_side)
    window, per_feature = assess(ref, cur, cfg)
    decision: RetrainDecision = decide(window, history, accepted_feedback, cfg)
    drift = {
        "verdict": window.verdict, "acquisition_alert": window.acquisition_alert,
        "drifted_share": window.drifted_share, "drifted_features": list(window.drifted_features),
        "min_drifted_share": cfg.min_drifted_share, "alpha": cfg.alpha,
        "feature_alpha": cfg.alpha / len(FEATURES), "features": per_feature,
        "counts": {
            "reference_images": len(ref.frame), "reference_unreadable": len(ref.unreadable),
            "current_files": len(current_files), "current_images": window.n_current,
            "unreadable": window.n_unreadable, "dark": window.n_dark,
            "acquisition_failure_share": window.acquisition_failure_share,
        },
        "unreadable_files": [{"path": p, "problem": why} for p, why in cur.unreadable[:_MAX_LISTED]],
        "reference": str(reference_dir), "source": str(source_dir), "current": str(current_dir),
        "params_hash": params_hash(cfg),
    }
    write_json(out_dir / DRIFT, drift)
    render_report(ref.frame, cur.frame, cfg, window, out_dir / REPORT_HTML)
    write_json(out_dir / DECISION, {**decision.as_dict(), "verdict": window.verdict,
                                    "accepted_feedback": accepted_feedback, "history_length": len(history)})
    if history_file is not None:  # last: a window is remembered only once its outputs exist
        at = datetime.now(UTC).isoformat(timespec="seconds")
        write_json(history_file, [*history, history_record(window, decision, str(current_dir), at)])
    return {"drift": drift, "decision": decision.as_dict()}
