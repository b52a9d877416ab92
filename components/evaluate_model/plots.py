"""Evaluation pictures: the confusion matrix clinicians read first (which disease is mistaken for
which), the reliability diagram (can the confidence be trusted) and one-vs-rest ROC curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.common.plot_data import write_csv
from components.common.plots import plot_confusion, pyplot, save
from components.evaluate_model.calibration import ReliabilityBins

__all__ = ["plot_confusion", "plot_reliability", "plot_roc", "write_reliability"]

# reliability.csv: the reliability diagram's numbers (dvc.yaml `plots:`)
RELIABILITY_CSV = "reliability.csv"
RELIABILITY_HEADER = (
    "bin",
    "bin_center",
    "confidence_raw",
    "accuracy_raw",
    "count_raw",
    "confidence_calibrated",
    "accuracy_calibrated",
    "count_calibrated",
)


def plot_reliability(curves: dict[str, tuple[ReliabilityBins, float]], path: Path) -> Path:
    """Accuracy vs confidence per bin for each curve (label → (bins, ECE)); the diagonal is perfect
    calibration. Bars below it mean over-confidence. Sample counts per bin are drawn underneath."""
    plt = pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6), height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for label, (stats, ece) in curves.items():
        filled = stats.count > 0
        ax.plot(stats.confidence[filled], stats.accuracy[filled], marker="o", label=f"{label} (ECE {ece:.3f})")
        centers = (stats.edges[:-1] + stats.edges[1:]) / 2
        hist.step(centers, stats.count, where="mid", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("reliability (top-label)")
    ax.legend(loc="upper left", fontsize=8)
    hist.set_xlabel("confidence")
    hist.set_ylabel("samples")
    return save(fig, path)


def plot_roc(
    y: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], auc: dict[str, float | None], path: Path
) -> Path:
    """One-vs-rest ROC curve per class that has both positives and negatives in the test split."""
    from sklearn.metrics import roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    for i, c in enumerate(classes):
        if auc.get(c) is None:
            continue
        fpr, tpr, _ = roc_curve(y == i, probs[:, i])
        ax.plot(fpr, tpr, label=f"{c} (AUC {auc[c]:.3f})")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("one-vs-rest ROC")
    ax.legend(loc="lower right", fontsize=8)
    return save(fig, path)


def write_reliability(raw: ReliabilityBins, cal: ReliabilityBins, path: Path) -> Path:
    """Per confidence bin, before and after temperature scaling (empty bins: blank cells), so
    `dvc plots diff` shows whether calibration moved between two revisions."""
    centers = (raw.edges[:-1] + raw.edges[1:]) / 2
    rows = (
        (
            i,
            float(centers[i]),
            float(raw.confidence[i]),
            float(raw.accuracy[i]),
            int(raw.count[i]),
            float(cal.confidence[i]),
            float(cal.accuracy[i]),
            int(cal.count[i]),
        )
        for i in range(len(centers))
    )
    return write_csv(path, RELIABILITY_HEADER, rows)
