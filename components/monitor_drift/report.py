"""Evidently renders what humans read; the verdict itself comes from our own tests (drift.json).

Evidently is configured with the same tests (KS on the image statistics and the confidence,
chi-square on the predicted class) at their textbook levels (alpha / n_features for the features,
class_mix_alpha, confidence_alpha). Its p-values assume independent images, so on clustered
clinical windows it flags more columns than the patient-calibrated verdict in drift.json, which is
the one the policy uses; the page is for looking at the distributions. So that a reader never sees
a headline the decision contradicts, every page opens with the calibrated verdict and each
calibrated check's p-value and level (`verdict_banner`), above a note that Evidently's own column
flags use textbook p-values; Evidently's snapshot is kept beside the page as JSON
(`drift_report.evidently.json`) for tools. Reference image statistics
and reference model outputs come from different samples (raw train images vs held-out patches), so
they are two reports: `drift_report.html` (with the skin tone, ITA°, when both sides measured it)
and, with model outputs, `model_drift_report.html`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from components.common.skin_tone import ITA_COLUMN
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.stats import CheckResult

BANNER_ID = "lesionops-verdict"
SNAPSHOT_SUFFIX = ".evidently.json"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def verdict_banner(verdict: str, checks: list[CheckResult] | tuple[CheckResult, ...]) -> str:
    """The decision's verdict and the calibrated tests behind it, as the first thing on the page."""
    rows = "".join(
        f"<tr><td>{escape(c.name)}</td><td>{escape(c.verdict)}</td><td>{_number(c.p_value)}</td>"
        f"<td>{_number(c.threshold)}</td><td>{escape(c.reason)}</td></tr>"
        for c in checks
    )
    colour = {"drift": "#b00020", "no_drift": "#1b5e20"}.get(verdict, "#444")
    return (
        f"<section id='{BANNER_ID}' style='font-family:sans-serif;margin:12px;padding:12px;"
        f"border:3px solid {colour}'><h1 style='color:{colour};margin:0'>LesionOps verdict: "
        f"{escape(verdict)}</h1><p>From the patient-calibrated tests in drift.json — the verdict "
        "decision.json and the retrain policy use. Evidently's per-column flags further down use "
        "textbook p-values that assume independent images; on clustered clinical windows they flag "
        "columns these tests do not: read them as a view of the distributions, not as a verdict.</p>"
        "<table border='1' cellpadding='4' style='border-collapse:collapse'><tr><th>check</th>"
        f"<th>verdict</th><th>calibrated p</th><th>level</th><th>reason</th></tr>{rows}</table></section>"
    )


def _with_banner(path: Path, banner: str) -> None:
    """Put `banner` first inside <body> (or first in the file when there is none)."""
    html = path.read_text(encoding="utf-8")
    at = html.find(">", html.lower().find("<body")) + 1 if "<body" in html.lower() else 0
    path.write_text(html[:at] + banner + html[at:], encoding="utf-8")


def _placeholder(path: Path, title: str, why: str) -> None:
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>LesionOps drift</title></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(why)}</p></body></html>\n",
        encoding="utf-8",
    )


def _evidently(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    methods: dict[str, str],
    thresholds: dict[str, float],
    drift_share: float,
    path: Path,
) -> None:
    # Imported here: evidently takes ~10 s to import, and only the reports need it.
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = numerical + categorical
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical or None)
    preset = DataDriftPreset(
        columns=cols, per_column_method=methods, per_column_threshold=thresholds, drift_share=drift_share
    )
    # Constant columns (one camera, one resolution) make evidently's correlations divide by 0.
    with np.errstate(all="ignore"):
        snapshot = Report([preset]).run(
            current_data=Dataset.from_pandas(cur[cols], data_definition=definition),
            reference_data=Dataset.from_pandas(ref[cols], data_definition=definition),
        )
    snapshot.save_html(str(path))  # evidently writes only for a str; a Path is silently ignored
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"evidently did not write {path}")
    snapshot.save_json(str(path.with_name(path.stem + SNAPSHOT_SUFFIX)))


def _atomic(path: Path, write: Callable[[Path], None], banner: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    _with_banner(tmp, banner)
    os.replace(tmp, path)
    snapshot = tmp.with_name(tmp.stem + SNAPSHOT_SUFFIX)
    if snapshot.is_file():
        os.replace(snapshot, path.with_name(path.stem + SNAPSHOT_SUFFIX))


def _measured(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and int(np.isfinite(frame[column].to_numpy(float)).sum()) >= 2


def render_report(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    features: list[str],
    cfg: MonitorConfig,
    verdict: str,
    path: Path,
    checks: tuple[CheckResult, ...] = (),
) -> None:
    """The image-statistics report, or a short page saying why there is none; either opens with
    the calibrated verdict."""

    def write(tmp: Path) -> None:
        if len(cur) < 2 or len(ref) < 2:
            _placeholder(
                tmp,
                "No drift report",
                f"{verdict}: {len(cur)} usable current and {len(ref)} reference "
                "image(s); at least 2 of each are needed.",
            )
            return
        levels = dict.fromkeys(features, cfg.alpha / len(features))
        if _measured(ref, ITA_COLUMN) and _measured(cur, ITA_COLUMN):  # skin tone: its own test and level
            levels[ITA_COLUMN] = cfg.skin_tone_alpha
        columns = list(levels)
        _evidently(ref, cur, columns, [], dict.fromkeys(columns, "ks"), levels, cfg.min_drifted_share, tmp)

    _atomic(path, write, verdict_banner(verdict, checks))


def render_model_report(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    cfg: MonitorConfig,
    path: Path,
    verdict: str = "",
    checks: tuple[CheckResult, ...] = (),
) -> None:
    """Predicted class (chi-square) and calibrated confidence (KS) of the window vs the reference."""

    def write(tmp: Path) -> None:
        rows = cur.dropna(subset=["predicted_class", "confidence"])
        if len(rows) < 2 or len(ref) < 2:
            _placeholder(tmp, "No model drift report", f"{len(rows)} prediction(s) with model outputs.")
            return
        frames = [
            f[["confidence", "predicted_class"]].astype({"predicted_class": str, "confidence": float})
            for f in (ref, rows)
        ]
        _evidently(
            frames[0],
            frames[1],
            ["confidence"],
            ["predicted_class"],
            {"confidence": "ks", "predicted_class": "chisquare"},
            {"confidence": cfg.confidence_alpha, "predicted_class": cfg.class_mix_alpha},
            0.5,
            tmp,
        )

    _atomic(path, write, verdict_banner(verdict, checks))
