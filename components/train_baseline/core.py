"""The classic baseline (seed 002, chapter 3): HOG + HSV histograms and a linear SVM.

It trains on exactly the split the CNN trains on (train for fitting, val for choosing C, test for
the report), so the gate can demand that a CNN beat it by a margin. C is chosen on val macro-F1 and
the model is fitted on train only: the CNN never fits on val either, and the baseline must not get
more data than the model it is the floor for.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
from sklearn.pipeline import Pipeline

from components.common.baseline import BaselineConfig, extract_features, select_c
from components.common.classifier.data import load_split
from components.common.errors import DataError
from components.common.io import write_json
from components.common.metrics import classification_metrics
from components.common.plots import plot_confusion
from components.common.skip import not_trained, write_skipped
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, git_commit, setup

METRICS = "baseline_metrics.json"
MODEL = "baseline.joblib"
CONFUSION = "confusion_matrix.png"
RUN_NAME = "baseline-hog-svm"


def _features(
    patch_dir: Path, split: str, cfg: BaselineConfig, classes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    data = load_split(patch_dir, split, classes, cfg.image_size)
    if len(data.labels) == 0:
        raise DataError(patch_dir / "patches.parquet", f"the {split} split is empty")
    images = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # N×3×H×W → N×H×W×3
    return extract_features(images, cfg), data.labels.numpy()


def _dump(model: Pipeline, path: Path) -> Path:
    """joblib dump through a temp file, so a crash never leaves half a model behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    joblib.dump(model, tmp)
    os.replace(tmp, path)
    return path


def run(
    cfg: BaselineConfig,
    task: TaskConfig,
    tracking: TrackingConfig,
    patch_dir: Path,
    out_dir: Path,
    data_version: str = "unknown",
) -> dict[str, Any]:
    """Fit the baseline on `patch_dir` (crop_patches output); write metrics, model and confusion
    matrix into `out_dir` and log them to an MLflow run of the task's experiment."""
    if reason := not_trained(task, "classifier"):
        return write_skipped(out_dir / METRICS, reason)
    train, val, test = (_features(patch_dir, s, cfg, task.classes) for s in ("train", "val", "test"))
    if len(np.unique(train[1])) < 2:
        raise DataError(patch_dir / "patches.parquet", "the train split holds fewer than 2 classes")
    model, chosen, search = select_c(cfg, train, val, task.classes)
    report: dict[str, Any] = {
        "test": classification_metrics(test[1], model.predict(test[0]), task.classes),
        "val": classification_metrics(val[1], model.predict(val[0]), task.classes),
        "C": chosen,
        "c_search": search,
        "n_features": int(train[0].shape[1]),
        "n_train": len(train[1]),
        "n_val": len(val[1]),
        "n_test": len(test[1]),
        "classes": list(task.classes),
        "data_version": data_version,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _dump(model, out_dir / MODEL)
    plot_confusion(np.array(report["test"]["confusion_matrix"]), task.classes, out_dir / CONFUSION)
    setup(tracking, f"{tracking.experiment}-{task.name}")
    with mlflow.start_run(run_name=RUN_NAME) as active:
        mlflow.set_tags(
            {"stage": "train_baseline", "kind": "baseline", "data_version": data_version, "git_commit": git_commit()}
        )
        mlflow.log_params(
            {
                **dataclasses.asdict(cfg),
                "task": task.name,
                "classes": ",".join(task.classes),
                "chosen_C": chosen,
                "n_features": report["n_features"],
                "n_train": report["n_train"],
                "n_val": report["n_val"],
                "n_test": report["n_test"],
            }
        )
        mlflow.log_metrics(
            {
                "test_macro_f1": report["test"]["macro_f1"],
                "test_accuracy": report["test"]["accuracy"],
                "val_macro_f1": report["val"]["macro_f1"],
            }
        )
        report["run_id"] = active.info.run_id
        write_json(out_dir / METRICS, report)
        for name in (METRICS, CONFUSION, MODEL):
            mlflow.log_artifact(str(out_dir / name))
    return report
