"""MLflow set-up shared by the stages that log: one tracking URI, one experiment per task.

The embedded default is SQLite under `mlruns/` with artifacts beside it, so `make demo` needs no
server. Set `mlflow.tracking_uri` to a server URL, or to null to use the standard
`MLFLOW_TRACKING_URI` variable. params.yaml wins over the variable on purpose:
`mlflow.set_tracking_uri` itself writes that variable, so in a long-lived process it holds
whatever store was used last, not what the user asked for.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities import Metric
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.common.errors import ConfigError


@dataclass(frozen=True)
class TrackingConfig:
    """The `mlflow` section of params.yaml."""

    tracking_uri: str | None = "sqlite:///mlruns/mlflow.db"  # None: MLFLOW_TRACKING_URI
    artifact_root: str = "mlruns/artifacts"
    experiment: str = "lesionops"
    registered_model: str = "lesionops-classifier"
    registered_detector: str = "lesionops-detector"


_METRIC_UNSAFE = re.compile(r"[^\w.\- ]+")


def metric_key(name: str) -> str:
    """A metric name MLflow accepts on every OS (letters, digits, `_ . -` and spaces): class names
    are display names (`Dead Cell (old)`), so per-class metric names keep them readable."""
    return _METRIC_UNSAFE.sub("_", str(name)).strip() or "_"


def absolute_sqlite(uri: str) -> str:
    """`sqlite:///relative.db` → `sqlite:////abs/relative.db`: one store whatever the working dir."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def absolute_root(root: str) -> str:
    """A local artifact root as an absolute path; URIs (s3://, file://) unchanged."""
    return root if "://" in root else str(Path(root).resolve())


def resolved_uri(cfg: TrackingConfig) -> str:
    """The tracking URI in force: params.yaml, else MLFLOW_TRACKING_URI (see the module doc)."""
    uri = cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ConfigError("mlflow.tracking_uri is null and MLFLOW_TRACKING_URI is not set")
    uri = absolute_sqlite(uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def _artifact_location(cfg: TrackingConfig) -> str:
    root = absolute_root(cfg.artifact_root)
    if "://" in root:
        return root
    Path(root).mkdir(parents=True, exist_ok=True)
    return Path(root).as_uri()


def setup(cfg: TrackingConfig, experiment: str | None = None) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id."""
    mlflow.set_tracking_uri(resolved_uri(cfg))
    name = experiment or cfg.experiment
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    exp_id = found.experiment_id if found else client.create_experiment(name, _artifact_location(cfg))
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The registered version behind `<name>@<alias>`, or None when there is none yet: "no
    champion" is a normal state (the first model), not an error."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def git_commit() -> str:
    """The code version a run came from (a tag on every training run); "unknown" outside git."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class EpochLogger:
    """Per-epoch metrics to MLflow in one `log_batch` call per `every` epochs (one round trip to a
    remote tracking server instead of one per metric)."""

    def __init__(self, run_id: str, every: int) -> None:
        self.client, self.run_id, self.every = MlflowClient(), run_id, every
        self.buffer: list[Metric] = []

    def __call__(self, epoch: int, row: dict[str, float]) -> None:
        stamp = int(time.time() * 1000)
        self.buffer += [Metric(k, float(v), stamp, epoch) for k, v in row.items() if k != "epoch"]
        if (epoch + 1) % self.every == 0:
            self.flush()

    def flush(self) -> None:
        for start in range(0, len(self.buffer), 1000):  # the API's per-call limit
            self.client.log_batch(self.run_id, metrics=self.buffer[start : start + 1000])
        self.buffer = []


def pinned(*packages: str) -> list[str]:
    """`package==version` of each installed package (a local build's `+cpu`/`+cu128` suffix
    dropped): a logged model's pip requirements are what it was built with, never a version
    written in code."""
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def torch_requirements() -> list[str]:
    """pip requirements of a logged torch model (pickled torch/torchvision modules only)."""
    return pinned("torch", "torchvision")


def sklearn_requirements() -> list[str]:
    """pip requirements of the logged baseline: scikit-learn, and skops, its serialisation."""
    return pinned("scikit-learn", "skops")
