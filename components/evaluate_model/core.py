"""Evaluate the challenger and the current champion on the same test split, then decide.

Outputs: `metrics.json` (DVC metrics), `decision.json` (every gate rule with value, threshold and
verdict), `confusion_matrix.png`. The same numbers are logged to the training run in MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient

from components.common.errors import DataError
from components.common.io import read_json, write_json
from components.common.metrics import classification_metrics
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, resolved_uri, version_by_alias
from components.evaluate_model.gate import GateConfig, decide
from components.evaluate_model.plots import plot_confusion
from components.train_model.core import CHECKPOINT, SUMMARY, pick_device, predict
from components.train_model.data import load_split
from components.train_model.models import build_model


@dataclass(frozen=True)
class BootstrapConfig:
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class EvaluateConfig:
    """The `evaluate_model` section of params.yaml."""

    champion_alias: str = "champion"
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    calibration_bins: int = 15
    gate: GateConfig = field(default_factory=GateConfig)


def _challenger(train_dir: Path, n_classes: int) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    ckpt_path, summary_path = train_dir / CHECKPOINT, train_dir / SUMMARY
    for p in (ckpt_path, summary_path):
        if not p.is_file():
            raise DataError(p, "not found; run train_model first")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = build_model(ckpt["config"]["arch"], n_classes, ckpt["config"]["dropout"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt, read_json(summary_path)


def champion_model(tracking: TrackingConfig, alias: str) -> tuple[torch.nn.Module | None, str | None]:
    """The model behind `models:/<name>@<alias>`, or (None, None) when there is no champion yet."""
    mlflow.set_tracking_uri(resolved_uri(tracking))
    version = version_by_alias(MlflowClient(), tracking.registered_model, alias)
    if version is None:
        return None, None
    uri = f"models:/{tracking.registered_model}/{version.version}"
    loaded = mlflow.pytorch.load_model(uri, map_location="cpu")
    # Logged as pt2 (torch.export) in eval mode; the exported module refuses `.eval()`.
    module = loaded.module() if isinstance(loaded, torch.export.ExportedProgram) else loaded
    return module, str(version.version)


def run(cfg: EvaluateConfig, task: TaskConfig, tracking: TrackingConfig, patch_dir: Path,
        train_dir: Path, out_dir: Path) -> dict[str, Any]:
    model, ckpt, summary = _challenger(train_dir, len(task.classes))
    test = load_split(patch_dir, "test", task.classes, ckpt["config"]["image_size"])
    if len(test.labels) == 0:
        raise DataError(patch_dir / "patches.parquet", "the test split is empty")
    device = pick_device("auto")
    y = test.labels.numpy()
    challenger = classification_metrics(y, predict(model.to(device), test.images, device).argmax(1), task.classes)
    champ_model, champ_version = champion_model(tracking, cfg.champion_alias)
    champion = None
    if champ_model is not None:
        champion = classification_metrics(y, predict(champ_model.to(device), test.images, device).argmax(1),
                                          task.classes)
    decision = decide(challenger, champion, cfg.gate)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(np.array(challenger["confusion_matrix"]), task.classes, out_dir / "confusion_matrix.png")
    flat = {"test_accuracy": challenger["accuracy"], "test_macro_f1": challenger["macro_f1"],
            "test_macro_recall": challenger["macro_recall"], "n_test": challenger["n"],
            **{f"test_recall_{c}": m["recall"] for c, m in challenger["per_class"].items()}}
    write_json(out_dir / "metrics.json", {**flat, "per_class": challenger["per_class"],
                                          "champion": champion, "champion_version": champ_version})
    report = {**decision.as_dict(), "run_id": summary["run_id"], "champion_version": champ_version}
    write_json(out_dir / "decision.json", report)
    with mlflow.start_run(run_id=summary["run_id"]):
        mlflow.log_metrics({k: float(v) for k, v in flat.items()})
        mlflow.set_tag("gate_passed", str(decision.passed).lower())
        for name in ("decision.json", "metrics.json", "confusion_matrix.png"):
            mlflow.log_artifact(str(out_dir / name), artifact_path="evaluation")
    return report
