"""Compare a window of current images with the reference, report, decide, remember.

Two inputs, one decision path:

* folder mode (`run`): a folder of current images; image statistics only. The reference is either
  a crop_patches output plus the raw source folder (the unique train images, what the model learned
  from) or a reference folder written by evaluate_model (`<out>/reference`);
* store mode (`run_store`): the last `window` classify predictions of the serving store since the
  previous window (windows do not overlap, so "drift in two consecutive windows" is two samples of
  evidence, not one counted twice), with their image statistics, embeddings, predicted classes and
  calibrated confidences, plus the reviewed feedback since the last retrain. The reference is a
  local folder or the `reference/` artifacts of the champion's training run.

The verdict comes from our own tests (window.py, stats.py; every statistic, p-value and level in
`drift.json`); Evidently renders the HTML for humans with the same tests and levels; the pure
policy turns verdict + history + feedback into retrain / alert (`decision.json`), and each window
is appended to the history file so persistence and the cooldown work across scheduled runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.drift_reference import Reference, champion_reference, load_reference
from components.common.errors import ConfigError, DataError
from components.common.image_stats import FEATURES, FeatureTable, features_frame, list_images
from components.common.io import read_json, write_json
from components.common.params import params_hash
from components.common.store import Store
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.policy import RetrainDecision, WindowResult, decide, history_record, last_retrain_at
from components.monitor_drift.report import render_model_report, render_report
from components.monitor_drift.tone import tone_summary
from components.monitor_drift.window import Assessment, acquisition_masks, assess_window

__all__ = ["MonitorConfig", "assess", "load_history", "monitor_frames", "reference_paths", "run", "run_store"]

DRIFT = "drift.json"
REPORT_HTML = "drift_report.html"
MODEL_REPORT_HTML = "model_drift_report.html"
DECISION = "decision.json"
_MAX_LISTED = 50  # unreadable files named in drift.json; the count is always exact


def reference_paths(reference_dir: Path, source_dir: Path) -> list[Path]:
    """Unique raw images of the train split, from `patches.parquet` rel_path under `source_dir`."""
    table = reference_dir / "patches.parquet"
    if not table.is_file():
        raise DataError(
            table,
            "not found; --reference must be a crop_patches output folder (or a reference folder with images.parquet)",
        )
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


def folder_reference(reference_dir: Path, source_dir: Path | None, max_side: int) -> Reference:
    """An evaluate_model reference folder as it is, or the train images of a crop output + source."""
    if (reference_dir / "images.parquet").is_file():
        return load_reference(reference_dir)
    if source_dir is None:
        raise ConfigError(
            f"{reference_dir}: no images.parquet here, so it must be a crop_patches output "
            "and --source (the raw images it was cropped from) is required"
        )
    table = features_frame(reference_paths(reference_dir, source_dir), max_side, progress="reference image statistics")
    if table.frame.empty:
        raise DataError(
            reference_dir,
            f"none of the {len(table.unreadable)} reference images is readable under "
            f"{source_dir}; first problem: {table.unreadable[0] if table.unreadable else '-'}",
        )
    frame = table.frame
    patches = pd.read_parquet(reference_dir / "patches.parquet")
    if "patient_id" in patches:  # whole-patient calibration windows (stats.py)
        patient = dict(zip(patches.rel_path.astype(str), patches.patient_id.astype(str), strict=True))
        frame = frame.assign(
            patient_id=[patient.get(Path(p).relative_to(source_dir).as_posix(), p) for p in frame.path]
        )
    return Reference(
        frame,
        None,
        {"pixels": "raw", "unreadable": len(table.unreadable)},
        f"{reference_dir} (train images under {source_dir})",
    )


def assess(ref: FeatureTable, cur: FeatureTable, cfg: MonitorConfig) -> tuple[WindowResult, dict[str, Any]]:
    """Image statistics of a current folder against reference images: the verdict and per-feature table."""
    result = assess_window(
        Reference(ref.frame, None, {}, "reference"), cur.frame, cfg, n_unreadable=len(cur.unreadable)
    )
    return result.window, result.per_feature


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
    try:
        last_retrain_at(history)
    except ValueError as exc:
        raise DataError(path, str(exc)) from exc
    return history


def last_window_end(history: list[dict[str, Any]]) -> datetime | None:
    """Newest prediction time of the last assessed store window: the next window starts after it."""
    for rec in reversed(history):
        if rec.get("window_end"):
            return datetime.fromisoformat(rec["window_end"])
    return None


def _drift_doc(
    cfg: MonitorConfig, result: Assessment, ref: Reference | None, where: str, current: str
) -> dict[str, Any]:
    w = result.window
    return {
        "verdict": w.verdict,
        "acquisition_alert": w.acquisition_alert,
        "drifted_checks": list(w.drifted_checks),
        "checks": [c.as_dict() for c in result.checks],
        "drifted_share": w.drifted_share,
        "drifted_features": list(w.drifted_features),
        "min_drifted_share": cfg.min_drifted_share,
        "alpha": cfg.alpha,
        "calibration_windows": cfg.calibration.windows,
        "false_alarm_bound": cfg.false_alarm_bound,
        "features": result.per_feature,
        "skin_tone": tone_summary(result.checks),
        "counts": result.counts,
        "notes": list(result.notes),
        "reference": where,
        "reference_pixels": None if ref is None else ref.meta.get("pixels"),
        "current": current,
        "params_hash": params_hash(cfg),
    }


def monitor_frames(
    cfg: MonitorConfig,
    ref: Reference | None,
    where: str,
    current: pd.DataFrame,
    out_dir: Path,
    *,
    reviews: pd.DataFrame | None = None,
    accepted_feedback: int = 0,
    history_file: Path | None = None,
    now: datetime | None = None,
    label: str = "store window",
    n_unreadable: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assess a window given as a DataFrame, write drift.json, the reports and decision.json, and
    append the window to the history file. Both modes end here."""
    if accepted_feedback < 0:
        raise ConfigError(f"accepted feedback must be ≥ 0, found {accepted_feedback}")
    now = now or datetime.now(UTC)
    history = load_history(history_file)
    result = assess_window(ref, current, cfg, n_unreadable=n_unreadable, reviews=reviews)
    decision: RetrainDecision = decide(result.window, history, accepted_feedback, cfg, now=now)
    drift = _drift_doc(cfg, result, ref, where, label)
    built_at = None if ref is None else ref.meta.get("max_side")
    if built_at is not None and built_at != cfg.max_side:  # sharpness depends on the scale it is taken at
        drift["notes"].append(
            f"the reference was built with max_side {built_at}, this run uses {cfg.max_side}: "
            "image statistics are not comparable; rebuild the reference or align the params"
        )
    if ref is not None and ref.meta.get("pixels") == "patch":
        drift["notes"].append(
            "reference image statistics are of train patches (no raw images in the crop "
            "output): colour is of lesion crops, sharpness is left out"
        )
    write_json(out_dir / DRIFT, drift)
    features = [f for f in (ref.features if ref else FEATURES) if f in FEATURES]
    render_report(
        pd.DataFrame(columns=features) if ref is None else ref.images,
        result.usable,
        features,
        cfg,
        result.window.verdict,
        out_dir / REPORT_HTML,
        result.checks,
    )
    if ref is not None and ref.model is not None and "predicted_class" in current:
        render_model_report(
            ref.model, result.usable, cfg, out_dir / MODEL_REPORT_HTML, result.window.verdict, result.checks
        )
    write_json(
        out_dir / DECISION,
        {
            **decision.as_dict(),
            "verdict": result.window.verdict,
            "drifted_checks": list(result.window.drifted_checks),
            "skin_tone": {k: drift["skin_tone"].get(k) for k in ("verdict", "p_value", "reason")},
            "accepted_feedback": accepted_feedback,
            "history_length": len(history),
        },
    )
    if history_file is not None:  # last: a window is remembered only once its outputs exist
        record = history_record(result.window, decision, label, now.isoformat(timespec="seconds"), **(extra or {}))
        write_json(history_file, [*history, record])
    return {"drift": drift, "decision": decision.as_dict()}


def run(
    cfg: MonitorConfig,
    reference_dir: Path,
    source_dir: Path | None,
    current_dir: Path,
    out_dir: Path,
    history_file: Path | None = None,
    accepted_feedback: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Folder mode: assess every image under `current_dir` against the reference."""
    if accepted_feedback < 0:
        raise ConfigError(f"--accepted-feedback must be ≥ 0, found {accepted_feedback}")
    load_history(history_file)  # a corrupt history fails before any work
    current_files = list_images(current_dir)
    ref = folder_reference(reference_dir, source_dir, cfg.max_side)
    cur = features_frame(current_files, cfg.max_side, progress="current image statistics")
    result = monitor_frames(
        cfg,
        ref,
        ref.where,
        cur.frame,
        out_dir,
        accepted_feedback=accepted_feedback,
        history_file=history_file,
        now=now,
        label=str(current_dir),
        n_unreadable=len(cur.unreadable),
        extra={"mode": "folder"},
    )
    drift = result["drift"]
    drift["counts"]["current_files"] = len(current_files)
    drift["unreadable_files"] = [{"path": p, "problem": why} for p, why in cur.unreadable[:_MAX_LISTED]]
    drift["source"] = None if source_dir is None else str(source_dir)
    write_json(out_dir / DRIFT, drift)
    return result


def _store_window(
    store: Any, cfg: MonitorConfig, history: list[dict[str, Any]]
) -> tuple[pd.DataFrame, datetime | None]:
    """Classify predictions newer than the last assessed window, at most `window` of them."""
    since = last_window_end(history)
    frame = store.recent_predictions(cfg.window, kind="classify", since=since)
    if since is not None and not frame.empty:
        frame = frame[pd.to_datetime(frame.created_at, utc=True) > pd.Timestamp(since)]
    return frame.reset_index(drop=True), since


def _usable(current: pd.DataFrame, ref: Reference, cfg: MonitorConfig) -> int:
    rows = current.dropna(subset=["brightness", "saturation"])
    dark, wrong = acquisition_masks(rows, ref, cfg)
    return int((~(dark | wrong)).sum())


def _redacted(url: str) -> str:
    """The store URL without its password (it goes into drift.json and the history)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def run_store(
    cfg: MonitorConfig,
    store_url: str,
    out_dir: Path,
    *,
    reference_dir: Path | None = None,
    tracking: Any = None,
    alias: str = "champion",
    history_file: Path | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store mode: the latest window of the serving store against a reference folder, or else the
    champion's logged reference (`tracking` = the mlflow TrackingConfig). No reference → no verdict."""

    history = load_history(history_file)
    if reference_dir is not None:
        ref: Reference | None = load_reference(reference_dir)
        where = str(reference_dir)
    elif tracking is not None:
        ref, where = champion_reference(tracking, alias, out_dir)  # a copy lands in <out>/reference/
    else:
        ref, where = None, "no reference given (neither --reference nor an MLflow champion)"
    store = Store(store_url)
    try:
        current, since = _store_window(store, cfg, history)
        retrained = last_retrain_at(history)
        reviews = store.reviewed_feedback(since=retrained)
        accepted = store.count_feedback("accepted", since=retrained)
    finally:
        store.close()
    n = len(current)
    start = current.created_at.min().isoformat() if n else None
    end = current.created_at.max().isoformat() if n else None
    # A window too small to judge (or with nothing to judge against) is not consumed: its predictions
    # are assessed again together with the next ones.
    consumed = ref is not None and n > 0 and _usable(current, ref, cfg) >= cfg.min_window
    extra = {
        "mode": "store",
        "window_start": start,
        "window_end": end if consumed else (since.isoformat() if since else None),
    }
    label = f"{_redacted(store_url)} classify predictions {start} .. {end} ({n})"
    return monitor_frames(
        cfg,
        ref,
        where,
        current,
        out_dir,
        reviews=reviews,
        accepted_feedback=accepted,
        history_file=history_file,
        now=now,
        label=label,
        extra=extra,
    )
