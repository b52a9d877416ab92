"""Register the trained model in the MLflow registry and move the champion alias.

Never promotes on a failed gate (raises GateFailed, so `dvc repro` fails loudly), keeps the old
champion under the `previous` alias for rollback, and is idempotent: promoting the same run twice
leaves one version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.common.errors import DataError, GateFailed
from components.common.io import read_json, write_json
from components.common.tracking import TrackingConfig, resolved_uri, version_by_alias
from components.train_model.core import SUMMARY


@dataclass(frozen=True)
class PromoteConfig:
    """The `promote_model` section of params.yaml."""

    alias: str = "champion"
    previous_alias: str = "previous"
    audit_log: str = "mlruns/audit.jsonl"
    lock_timeout_s: float = 30.0


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(path, "not found; run the earlier stages first")
    return read_json(path)


def _current(client: MlflowClient, name: str, alias: str) -> str | None:
    version = version_by_alias(client, name, alias)
    return None if version is None else str(version.version)


def _existing_version(client: MlflowClient, name: str, run_id: str) -> str | None:
    try:
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException:
        return None
    return str(found[0].version) if found else None


def run(cfg: PromoteConfig, tracking: TrackingConfig, train_dir: Path, eval_dir: Path,
        out_dir: Path) -> dict[str, Any]:
    decision = _read(eval_dir / "decision.json")
    summary = _read(train_dir / SUMMARY)
    if not decision["passed"]:
        reasons = "; ".join(f"{r['name']}: {r['reason']}" for r in decision["rules"] if not r["passed"])
        raise GateFailed(f"{eval_dir / 'decision.json'}: not promoting run {summary['run_id']}: {reasons}")
    mlflow.set_tracking_uri(resolved_uri(tracking))
    client = MlflowClient()
    name = tracking.registered_model
    version = _existing_version(client, name, summary["run_id"])
    if version is None:
        version = str(mlflow.register_model(summary["model_uri"], name).version)
    old = _current(client, name, cfg.alias)
    if old != version:
        if old is not None:
            client.set_registered_model_alias(name, cfg.previous_alias, old)
        client.set_registered_model_alias(name, cfg.alias, version)
    metrics = read_json(eval_dir / "metrics.json")
    for key, value in {"gate_passed": "true", "data_version": summary.get("data_version", "unknown"),
                       "test_macro_f1": f"{metrics['test_macro_f1']:.4f}",
                       "test_accuracy": f"{metrics['test_accuracy']:.4f}"}.items():
        client.set_model_version_tag(name, version, key, value)
    result = {"name": name, "version": version, "alias": cfg.alias, "previous_version": old,
              "run_id": summary["run_id"], "moved": old != version,
              "test_accuracy": metrics["test_accuracy"], "test_macro_f1": metrics["test_macro_f1"]}
    write_json(out_dir / "promotion.json", result)
    return result
