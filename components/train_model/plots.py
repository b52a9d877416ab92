"""Training curves as a PNG a person can open (and MLflow shows next to the run) and as the CSV
behind it, which `dvc plots show|diff` draws (dvc.yaml `plots:`)."""

from __future__ import annotations

from pathlib import Path

from components.common.plot_data import write_csv

CURVES_CSV = "curves.csv"
CURVES_HEADER = ("epoch", "train_loss", "val_accuracy", "val_macro_f1", "lr")


def write_curves(history: list[dict[str, float]], path: Path) -> Path:
    """One row per epoch (header only when nothing was trained: DVC needs the file to exist)."""
    return write_csv(path, CURVES_HEADER, ([h.get(k, "") for k in CURVES_HEADER] for h in history))


def plot_curves(history: list[dict[str, float]], path: Path) -> Path:
    """Loss, validation scores and the learning rate per epoch (the schedule explains many bends)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: pipelines run without a display
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.5))
    epochs = [int(h.get("epoch", i)) for i, h in enumerate(history)]
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax1.set_xlabel("epoch")
    ax1.legend()
    ax2.plot(epochs, [h["val_accuracy"] for h in history], label="val accuracy")
    ax2.plot(epochs, [h["val_macro_f1"] for h in history], label="val macro-F1")
    ax2.set_xlabel("epoch")
    ax2.set_ylim(0, 1)
    ax2.legend()
    if all("lr" in h for h in history):
        ax3.plot(epochs, [h["lr"] for h in history], label="learning rate")
        ax3.set_yscale("log")
        ax3.legend()
    ax3.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
