"""The classic baseline (seed 002, chapter 3): HOG + HSV histograms and a linear SVM.

It trains on exactly the split the CNN trains on (train for fitting, val for choosing C, test for
the report), so the gate can demand that a CNN beat it by a margin. C is chosen on val macro-F1 and
the model is fitted on train only: the CNN never fits on val either, and the baseline must not get
more data than the model it is the floor for.

The fitted pipeline is logged with MLflow's sklearn flavour in skops format (no pickle: only
scikit-learn types, loadable wherever the pip requirements are installed). Its input is the
feature vector, computed outside the model: HOG and the histograms are our code, and a model
that carried them would load only inside this repository. The feature settings and classes ride
in the model's metadata, and `model_uri` in `baseline_metrics.json` is how evaluate_model finds it.

Not registered: the registry holds what promote_model put there through the gate, its lock and
audit log; the baseline is a floor the CNN is measured against, not a candidate for serving, and
evaluate_model scores it by its own MLflow model URI.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from components.common.baseline import BaselineConfig, feature_metadata, select_c, split_features
from components.common.errors import DataError
from components.common.io import write_json
from components.common.metrics import classification_metrics
from components.common.plots import plot_confusion
from components.common.skip import not_trained, write_skipped
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, git_commit, setup, sklearn_requirements

METRICS = "baseline_metrics.json"
CONFUSION = "confusion_matrix.png"
RUN_NAME = "baseline-hog-svm"


def log_model(model: Pipeline, x: np.ndarray, cfg: BaselineConfig, classes: tuple[str, ...]) -> str:
    """The pipeline as an MLflow sklearn model (skops, a signature from real feature rows, the
    feature settings in its metadata) in the active run; returns its model URI."""
    example = x[:2]
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        signature=infer_signature(example, model.predict(example)),
        input_example=example,
        pip_requirements=sklearn_requirements(),
        metadata=feature_metadata(cfg, classes),
    )
    return info.model_uri


def run(
    cfg: BaselineConfig,
    task: TaskConfig,
    tracking: TrackingConfig,
    patch_dir: Path,
    out_dir: Path,
    data_version: str = "unknown",
) -> dict[str, Any]:
    """Fit the baseline on `patch_dir` (crop_patches output); write metrics and confusion matrix into
    `out_dir`, log them and the model to an MLflow run of the task's experiment."""
    if reason := not_trained(task, "classifier"):
        return write_skipped(out_dir / METRICS, reason)
    train, val, test = (split_features(patch_dir, s, cfg, task.classes) for s in ("train", "val", "test"))
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
        report["model_uri"] = log_model(model, train[0], cfg, task.classes)
        write_json(out_dir / METRICS, report)
        for name in (METRICS, CONFUSION):
            mlflow.log_artifact(str(out_dir / name))
    return report
