"""Test metrics per subgroup: skin tone category, body site and camera, where the patch table knows them.

One test-set average can hide a model that fails on dark skin or on one body site, so the test split
is cut by each grouping column of `patches.parquet` and every group gets its accuracy, macro-F1 and
per-class recall with patient-bootstrap CIs (components/common/bootstrap.py, resampling the group's
own patients or split groups) and its sample size in patches and patients. A grouping whose column
is absent or empty is listed under `not_known` (tone is measured by crop_patches; body site comes
from metadata.csv, camera from its `camera` column or else the photo's EXIF make and model). Rows
with no value (a photo with no measured skin) form the group "unknown". The gate (gate.py
`_group_rules`) reads the table this module writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from components.common.bootstrap import (
    BootstrapConfig,
    confidence_intervals,
    interval,
    patient_counts,
    resampled_confusions,
)
from components.common.classifier.data import split_table
from components.common.metrics import classification_metrics
from components.common.skin_tone import TONE_NAMES

SUBGROUPS_FILE = "subgroups.json"
# grouping name → patches.parquet column
GROUPINGS = {"skin_tone": "skin_tone", "body_site": "body_site", "camera": "camera"}
UNKNOWN = "unknown"


def group_labels(patch_dir: Path, classes: tuple[str, ...]) -> dict[str, list[str]]:
    """Each known grouping's value for every test sample, in `load_split`'s order (the same table
    sort), so labels line up with the predictions."""
    frame, _ = split_table(patch_dir, "test", classes)
    out = {}
    for name, column in GROUPINGS.items():
        if column not in frame.columns:
            continue
        values = frame[column].astype(object).where(frame[column].notna() & (frame[column] != ""), None)
        if values.notna().any():
            out[name] = [UNKNOWN if v is None else str(v) for v in values]
    return out


def _ordered(values: Sequence[str]) -> list[str]:
    """Groups in reading order: tone categories lightest first, anything else by name, unknown last."""
    rank = {name: i for i, name in enumerate(TONE_NAMES)}
    return sorted(set(values), key=lambda v: (v == UNKNOWN, rank.get(v, len(rank)), v))


def _recall_cis(conf: np.ndarray, confidence: float) -> list[list[float] | None]:
    """Per-class recall interval over resampled confusions; a resample without the class is left out."""
    support = conf.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diagonal(conf, axis1=1, axis2=2) / support
    out: list[list[float] | None] = []
    for k in range(conf.shape[1]):
        values = recall[:, k][support[:, k] > 0]
        out.append(interval(values, confidence) if len(values) else None)
    return out


def group_row(
    name: str,
    y: np.ndarray,
    pred: np.ndarray,
    patients: Sequence[str],
    units: Sequence[str],
    classes: tuple[str, ...],
    boot: BootstrapConfig,
) -> dict[str, Any]:
    """One group's sample size, metrics with patient-bootstrap CIs and worst per-class recall."""
    m = classification_metrics(y, pred, classes)
    counts, index = patient_counts(units, boot)
    recall_ci = _recall_cis(resampled_confusions(y, pred, counts, index, len(classes)), boot.confidence)
    present = [(m["per_class"][c]["recall"], c) for c in classes if m["per_class"][c]["support"] > 0]
    worst = min(present, key=lambda rc: rc[0]) if present else (None, None)  # ties: first in task order
    return {
        "group": name,
        "n": int(len(y)),
        "n_patients": len(set(patients)),
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "ci": confidence_intervals(y, pred, counts, index, len(classes), boot.confidence),
        "per_class": {
            c: {**{k: m["per_class"][c][k] for k in ("recall", "support")}, "recall_ci": recall_ci[i]}
            for i, c in enumerate(classes)
        },
        "worst_recall": worst[0],
        "worst_class": worst[1],
    }


def subgroup_table(
    labels: dict[str, list[str]],
    y: np.ndarray,
    pred: np.ndarray,
    patients: Sequence[str],
    units: Sequence[str],
    classes: tuple[str, ...],
    boot: BootstrapConfig,
) -> dict[str, Any]:
    """Every known grouping's rows, the groupings in reading order (JSON sorts keys), the groupings
    not known, the bootstrap."""
    groupings = {}
    for grouping, values in labels.items():
        column = np.asarray(values, dtype=object)
        rows = []
        for name in _ordered(values):
            keep = column == name
            who = [p for p, k in zip(patients, keep, strict=True) if k]
            unit = [u for u, k in zip(units, keep, strict=True) if k]
            rows.append(group_row(name, y[keep], pred[keep], who, unit, classes, boot))
        groupings[grouping] = rows
    return {
        "groupings": groupings,
        "order": list(labels),
        "not_known": [g for g in GROUPINGS if g not in labels],
        "bootstrap": asdict(boot),
    }
