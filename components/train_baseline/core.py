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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from components.common.errors import ConfigError, DataError
from components.common.io import write_json
from components.common.metrics import classification_metrics
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, git_commit, setup
from components.evaluate_model.plots import plot_confusion
from components.train_baseline.features import extract_features
from components.train_model.data import load_split

METRICS = "baseline_metrics.json"
MODEL = "baseline.joblib"
CONFUSION = "confusion_matrix.png"
RUN_NAME = "baseline-hog-svm"


@dataclass(frozen=True)
class BaselineConfig:
    """The `train_baseline` section of params.yaml."""

    image_size: int = 64
    hog_orientations: int = 9
    hog_pixels_per_cell: int = 8
    hog_cells_per_block: int = 2
    color_bins: int = 16  # per HSV channel
    C: float = 0.1  # used as is when c_grid is empty
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0)
    class_weight: str | None = "balanced"  # balanced | none (null)
    max_iter: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        block = self.hog_pixels_per_cell * self.hog_cells_per_block
        if min(self.hog_orientations, self.hog_pixels_per_cell, self.hog_cells_per_block) < 1:
            raise ConfigError("train_baseline.hog_*: orientations, pixels_per_cell and cells_per_block must be ≥ 1")
        if self.image_size < block:
            raise ConfigError(f"train_baseline.image_size: {self.image_size} is smaller than one HOG block "
                              f"({self.hog_pixels_per_cell}×{self.hog_cells_per_block} = {block} pixels)")
        if self.color_bins < 1:
            raise ConfigError(f"train_baseline.color_bins: must be ≥ 1, found {self.color_bins}")
        if self.C <= 0:
            raise ConfigError(f"train_baseline.C: must be > 0, found {self.C}")
        if any(c <= 0 for c in self.c_grid):
            raise ConfigError(f"train_baseline.c_grid: every C must be > 0, found {list(self.c_grid)}")
        if self.class_weight not in ("balanced", "none", None):
            raise ConfigError(f"train_baseline.class_weight: 'balanced' or 'none', found {self.class_weight!r}")
        if self.max_iter < 1:
            raise ConfigError(f"train_baseline.max_iter: must be ≥ 1, found {self.max_iter}")


def make_pipeline(cfg: BaselineConfig, C: float) -> Pipeline:
    """Standardise (HOG and histogram scales differ by orders of magnitude), then a linear SVM."""
    weight = None if cfg.class_weight in ("none", None) else cfg.class_weight
    return Pipeline([("scale", StandardScaler()),
                     ("svm", LinearSVC(C=C, class_weight=weight, max_iter=cfg.max_iter,
                                       random_state=cfg.seed, dual="auto"))])


def fit(cfg: BaselineConfig, C: float, x: np.ndarray, y: np.ndarray) -> tuple[Pipeline, bool]:
    """Fit one pipeline; also say whether liblinear converged (an unconverged floor is reported)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = make_pipeline(cfg, C).fit(x, y)
    return model, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def select_c(cfg: BaselineConfig, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
             classes: tuple[str, ...]) -> tuple[Pipeline, float, list[dict[str, Any]]]:
    """Fit one model per C on train and keep the best on val macro-F1 (ties: the smaller C, the
    simpler model). The kept model *is* the refit on train with that C: fitting is deterministic."""
    grid = cfg.c_grid or (cfg.C,)
    search: list[dict[str, Any]] = []
    best: tuple[float, float, Pipeline] | None = None
    for C in grid:
        model, converged = fit(cfg, C, *train)
        score = classification_metrics(val[1], model.predict(val[0]), classes)["macro_f1"]
        search.append({"C": C, "val_macro_f1": score, "converged": converged})
        if best is None or (score, -C) > (best[0], -best[1]):
            best = (score, C, model)
    assert best is not None
    return best[2], best[1], search


def _features(patch_dir: Path, split: str, cfg: BaselineConfig,
              classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
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


def run(cfg: BaselineConfig, task: TaskConfig, tracking: TrackingConfig, patch_dir: Path, out_dir: Path,
        data_version: str = "unknown") -> dict[str, Any]:
    """Fit the baseline on `patch_dir` (crop_patches output); write metrics, model and confusion
    matrix into `out_dir` and log them to an MLflow run of the task's experiment."""
    train, val, test = (_features(patch_dir, s, cfg, task.classes) for s in ("train", "val", "test"))
    if len(np.unique(train[1])) < 2:
        raise DataError(patch_dir / "patches.parquet", "the train split holds fewer than 2 classes")
    model, chosen, search = select_c(cfg, train, val, task.classes)
    report: dict[str, Any] = {
        "test": classification_metrics(test[1], model.predict(test[0]), task.classes),
        "val": classification_metrics(val[1], model.predict(val[0]), task.classes),
        "C": chosen, "c_search": search, "n_features": int(train[0].shape[1]),
        "n_train": len(train[1]), "n_val": len(val[1]), "n_test": len(test[1]),
        "classes": list(task.classes), "data_version": data_version,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _dump(model, out_dir / MODEL)
    plot_confusion(np.array(report["test"]["confusion_matrix"]), task.classes, out_dir / CONFUSION)
    setup(tracking, f"{tracking.experiment}-{task.name}")
    with mlflow.start_run(run_name=RUN_NAME) as active:
        mlflow.set_tags({"stage": "train_baseline", "kind": "baseline", "data_version": data_version,
                         "git_commit": git_commit()})
        mlflow.log_params({**dataclasses.asdict(cfg), "task": task.name, "classes": ",".join(task.classes),
                           "chosen_C": chosen, "n_features": report["n_features"], "n_train": report["n_train"],
                           "n_val": report["n_val"], "n_test": report["n_test"]})
        mlflow.log_metrics({"test_macro_f1": report["test"]["macro_f1"], "test_accuracy": report["test"]["accuracy"],
                            "val_macro_f1": report["val"]["macro_f1"]})
        report["run_id"] = active.info.run_id
        write_json(out_dir / METRICS, report)
        for name in (METRICS, CONFUSION, MODEL):
            mlflow.log_artifact(str(out_dir / name))
    return report
