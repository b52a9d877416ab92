"""The data behind the evaluation figures, as CSV files DVC can render and diff.

A PNG shows one run; `dvc plots show` / `dvc plots diff` need the numbers (dvc.yaml `plots:`) to
draw a run or put two revisions side by side, and the Kubeflow UI's ClassificationMetrics reads
the same ROC points. Every writer also writes its header alone when there is nothing to plot (a
skipped stage), because DVC requires every declared file to exist.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CONFUSION_CSV = "confusion.csv"
ROC_CSV = "roc.csv"
CONFUSION_HEADER = ("actual", "predicted")
ROC_HEADER = ("fpr", "tpr", "threshold")


def _cell(value: Any) -> Any:
    """NaN and ±inf as an empty cell: CSV readers (vega, pandas) take it as missing."""
    return "" if isinstance(value, float) and not math.isfinite(value) else value


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write `rows` under `header` (written alone when there are no rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([_cell(v) for v in row] for row in rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    """One row per test sample (actual, predicted class names): DVC's `confusion` template counts them."""
    return write_csv(path, CONFUSION_HEADER, ((classes[int(a)], classes[int(p)]) for a, p in zip(y_true, y_pred)))


def micro_roc(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The micro-averaged one-vs-rest ROC curve (every sample × class a binary decision): one curve
    for a multi-class model, which is what the KFP UI's ROC view and a DVC line plot can show."""
    from sklearn.metrics import roc_curve

    k = probs.shape[1] if probs.ndim == 2 else 0
    if len(y_true) == 0 or k < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    onehot = np.eye(k)[np.asarray(y_true, dtype=int)]
    fpr, tpr, thresholds = roc_curve(onehot.ravel(), probs.ravel())
    return fpr, tpr, np.minimum(thresholds, 1.0)  # sklearn's first threshold is +inf


def write_roc(y_true: np.ndarray, probs: np.ndarray, path: Path) -> Path:
    fpr, tpr, thresholds = micro_roc(y_true, probs)
    return write_csv(path, ROC_HEADER, zip(fpr.tolist(), tpr.tolist(), thresholds.tolist()))


def write_skipped_tables(out_dir: Path, names: Mapping[str, Sequence[str]]) -> None:
    """Header-only files for a skipped stage (file name → header)."""
    for name, header in names.items():
        write_csv(out_dir / name, header, [])
