"""What the registry says about the current champion: name, version, run and test metrics."""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.common.tracking import TrackingConfig, resolved_uri


def champion_summary(tracking: TrackingConfig, alias: str = "champion") -> dict[str, Any] | None:
    """The version behind `models:/<name>@<alias>` with its run's test metrics, or None."""
    mlflow.set_tracking_uri(resolved_uri(tracking))
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(tracking.registered_model, alias)
    except MlflowException:
        return None
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    return {
        "name": tracking.registered_model, "version": str(version.version), "alias": alias,
        "run_id": version.run_id, "aliases": list(version.aliases),
        "test_metrics": {k: v for k, v in sorted(metrics.items()) if k.startswith("test_")},
        "tags": dict(version.tags),
    }
