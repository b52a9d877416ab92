"""The classic baseline, scored here on the same test patches as the challenger.

train_baseline logs the HOG + SVM pipeline as an MLflow sklearn model and names it in
`baseline_metrics.json` (`model_uri`). It is loaded from MLflow, as the champion is, and scored
here rather than trusting the number train_baseline wrote: the floor the gate applies is then
computed by the same stage, on the same rows, as the score it is compared with. Its input is the
feature vector, computed with the settings recorded in the model's metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
from mlflow.exceptions import MlflowException

from components.common.baseline import config_from_metadata, split_features
from components.common.errors import DataError
from components.common.io import read_json
from components.common.metrics import classification_metrics
from components.common.tracking import TrackingConfig, resolved_uri

BASELINE_FILE = "baseline_metrics.json"


def baseline_uri(baseline_dir: Path) -> str:
    """The MLflow model URI train_baseline recorded in `baseline_metrics.json`."""
    path = baseline_dir / BASELINE_FILE
    if not path.is_file():
        raise DataError(path, "not found; run train_baseline first (or leave out --baseline)")
    doc = read_json(path)
    uri = doc.get("model_uri") if isinstance(doc, dict) else None
    if not isinstance(uri, str) or not uri:
        raise DataError(path, "no 'model_uri': written before the baseline was an MLflow model; rerun train_baseline")
    return uri


def read_baseline(
    baseline_dir: Path | None, tracking: TrackingConfig, patch_dir: Path, classes: tuple[str, ...]
) -> dict[str, Any] | None:
    """The baseline's test metrics (`classification_metrics` plus its `model_uri`), None when no
    baseline folder is given."""
    if baseline_dir is None:
        return None
    uri = baseline_uri(baseline_dir)
    where = f"{baseline_dir / BASELINE_FILE} → {uri}"
    mlflow.set_tracking_uri(resolved_uri(tracking))
    try:
        model = mlflow.sklearn.load_model(uri)
        metadata = mlflow.models.get_model_info(uri).metadata
    except (MlflowException, OSError) as exc:
        raise DataError(where, f"cannot be loaded from the MLflow store {resolved_uri(tracking)}: {exc}") from exc
    cfg, trained_on = config_from_metadata(metadata, where)
    if trained_on != classes:
        raise DataError(where, f"the baseline predicts classes {list(trained_on)}, the task has {list(classes)}")
    x, y = split_features(patch_dir, "test", cfg, classes)
    return {**classification_metrics(y, model.predict(x), classes), "model_uri": uri}
