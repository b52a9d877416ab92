"""Evaluation pictures: the confusion matrix clinicians read first (which disease is mistaken for
which), the reliability diagram (can the confidence be trusted) and one-vs-rest ROC curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from components.evaluate_model.calibration import ReliabilityBins


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(matrix: np.ndarray, classes: tuple[str, ...], path: Path) -> Path:
    plt = _pyplot()
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.3 * len(classes) + 2, 1.1 * len(classes) + 1.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{matrix[i, j]}\n{share[i, j]:.0%}", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=35, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (row-normalised)")
    return _save(fig, path)


def plot_reliability(curves: dict[str, tuple[ReliabilityBins, float]], path: Path) -> Path:
    """Accuracy vs confidence per bin for each curve (label → (bins, ECE)); the diagonal is perfect
    calibration. Bars below it mean over-confidence. Sample counts per bin are drawn underneath."""
    plt = _pyplot()
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
    return _save(fig, path)


def plot_roc(y: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], auc: dict[str, float | None],
             path: Path) -> Path:
    """One-vs-rest ROC curve per class that has both positives and negatives in the test split."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
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
    return _save(fig, path)
