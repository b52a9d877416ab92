"""Classification metrics used by training (validation) and evaluation (test, the gate)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro-F1, macro recall and per-class precision/recall over all `classes`."""
    labels = list(range(len(classes)))
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    present = support > 0
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        # Averaged over the classes present in y_true: an absent class is reported, not scored as 0.
        "macro_f1": float(np.mean(f1[present])) if present.any() else 0.0,
        "macro_recall": float(np.mean(rec[present])) if present.any() else 0.0,
        "per_class": {c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(len(y_true)),
    }
