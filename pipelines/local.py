"""Run the training pipeline on this machine with `kfp.local` (each task a local subprocess)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def portable_params(params: dict[str, Any]) -> dict[str, Any]:
    """Pin relative MLflow locations to absolute ones so every task subprocess sees the same store."""
    doc = json.loads(json.dumps(params))
    ml = doc.setdefault("mlflow", {})
    uri = ml.get("tracking_uri", "")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        ml["tracking_uri"] = f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    root = ml.get("artifact_root", "")
    if root and "://" not in root:
        ml["artifact_root"] = str(Path(root).resolve())
    return doc


def run_training(source: Path, params: dict[str, Any], pipeline_root: Path, data_version: str) -> None:
    """Execute `training_pipeline` with kfp.local's SubprocessRunner (offline, no venv per task)."""
    from kfp import local

    from pipelines.training import training_pipeline

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root.resolve()),
               raise_on_error=True)
    training_pipeline(source_uri=str(source.resolve()), params_json=json.dumps(portable_params(params)),
                      data_version=data_version)
