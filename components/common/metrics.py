"""Classification metrics used by training (validation) and evaluation (test, the gate)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...], probs: np.ndarray | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1, macro recall and per-class precision/recall over all `classes`.

    With `probs` (N×K class probabilities) the one-vs-rest ROC-AUC per class and its macro mean
    are added (see `probability_metrics`), so one dict describes a model on a split.
    """
    labels = list(range(len(classes)))
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = support > 0
    out = {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        # Averaged over the classes present in y_true: an absent class is reported, not scored as 0.
        "macro_f1": float(np.mean(f1[present])) if present.any() else 0.0,
        "macro_recall": float(np.mean(rec[present])) if present.any() else 0.0,
        "per_class": {
            c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(len(y_true)),
    }
    if probs is not None:
        auc = probability_metrics(y_true, probs, classes)
        out["roc_auc_macro"] = auc["roc_auc_macro"]
        for c in classes:
            out["per_class"][c]["roc_auc"] = auc["roc_auc"][c]
    return out


def probability_metrics(y_true: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """One-vs-rest ROC-AUC per class and its macro mean over the classes where it is defined.

    A class absent from `y_true` (no positives) or the only class present (no negatives) has no
    ROC curve: it is reported as None rather than a made-up 0.5, and left out of the macro mean.
    """
    y_true = np.asarray(y_true)
    per_class: dict[str, float | None] = {}
    for i, c in enumerate(classes):
        positives = y_true == i
        defined = positives.any() and not positives.all()
        per_class[c] = float(roc_auc_score(positives, probs[:, i])) if defined else None
    scored = [v for v in per_class.values() if v is not None]
    return {"roc_auc": per_class, "roc_auc_macro": float(np.mean(scored)) if scored else None}
