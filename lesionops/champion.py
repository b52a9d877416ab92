"""What the registry says about the current champion: name, version, run and test metrics."""

from __future__ import annotations

from typing import Any

from mlflow.tracking import MlflowClient

from components.common.champion import champion_version
from components.common.tracking import TrackingConfig

# How far the CNN is above seed 002's HOG+SVM floor, on the same test split (evaluate_model logs them).
BASELINE_KEYS = ("baseline_macro_f1", "gain_vs_baseline")


def champion_summary(tracking: TrackingConfig, alias: str = "champion") -> dict[str, Any] | None:
    """The version behind `models:/<name>@<alias>` with its run's test metrics, or None."""
    version = champion_version(tracking, tracking.registered_model, alias)
    if version is None:
        return None
    metrics = MlflowClient().get_run(version.run_id).data.metrics if version.run_id else {}
    return {
        "name": tracking.registered_model,
        "version": str(version.version),
        "alias": alias,
        "run_id": version.run_id,
        "aliases": list(version.aliases),
        "test_metrics": {k: v for k, v in sorted(metrics.items()) if k.startswith("test_") or k in BASELINE_KEYS},
        "tags": dict(version.tags),
    }
