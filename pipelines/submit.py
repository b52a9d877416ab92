"""Submit the training pipeline to a Kubeflow Pipelines endpoint.

`run_request` is pure: from the params document, the data URI and its fingerprint it builds what
`kfp.Client.create_run_from_pipeline_package` is given, after checking that the run can work on a
cluster at all (pods cannot see this machine's files or its SQLite MLflow store). `submit_training`
fingerprints the data, compiles the pipeline from the same document and creates the run. The host
is `--host` or `retrain.kubeflow_host` (None: KF_PIPELINES_ENDPOINT or the in-cluster service);
credentials come from the standard kube config / KF_PIPELINES_* variables that kfp.Client reads.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.common.errors import ConfigError
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig

PLACEHOLDER_VERSIONS = ("", "unknown", "untracked")


@dataclass(frozen=True)
class RunRequest:
    """The keyword arguments of `create_run_from_pipeline_package` (besides the package)."""

    arguments: dict[str, str]
    run_name: str
    experiment_name: str
    pipeline_root: str
    namespace: str | None
    service_account: str | None
    enable_caching: bool | None = None  # None: each task's own caching option (kfp would override them all)

    def summary(self) -> dict[str, Any]:
        """For printing: the arguments without the (long) params document."""
        shown = {k: v for k, v in self.arguments.items() if k != "params_json"}
        return {**asdict(self), "arguments": {**shown, "params_json": f"<{len(self.arguments['params_json'])} chars>"}}


def cluster_problems(doc: dict[str, Any], source_uri: str, data_version: str | None) -> list[str]:
    """What would make a run fail or lie on a cluster; empty when it can be submitted
    (`data_version` None: not computed yet, not checked)."""
    from pipelines.kubeflow import from_params

    kube, ml = from_params(doc), section(doc, "mlflow", TrackingConfig)
    problems: list[str] = []
    if not source_uri.startswith("s3://"):
        problems.append(f"source {source_uri!r}: pods read s3://bucket/prefix, not a path on this machine")
    if data_version is not None and data_version in PLACEHOLDER_VERSIONS:
        problems.append(
            f"data_version {data_version!r}: the data fingerprint is the cache key; compute it "
            "(pipelines/datasource.py fingerprint)"
        )
    if not kube.pipeline_root:
        problems.append("kubeflow.pipeline_root is not set (e.g. s3://<artifacts bucket>/pipeline-root)")
    return problems + mlflow_problems(ml)


def mlflow_problems(ml: TrackingConfig) -> list[str]:
    """The `mlflow` section must name shared services: a local store would be a new, empty one in
    every pod, and its models would vanish with the pod."""
    problems = []
    uri = str(ml.tracking_uri or "")
    if "://" not in uri or uri.startswith(("sqlite:", "file:")):
        problems.append(
            f"mlflow.tracking_uri {uri or None!r}: every pod needs the same tracking server "
            "(http(s)://… or postgresql://…)"
        )
    root = str(ml.artifact_root or "")
    if "://" not in root or root.startswith("file:"):
        problems.append(f"mlflow.artifact_root {root or None!r}: models must go to shared storage (s3://…)")
    return problems


def run_request(
    doc: dict[str, Any], source_uri: str, data_version: str, *, experiment: str, run_name: str | None = None
) -> RunRequest:
    """The run's arguments: the data, its fingerprint as `data_version`, the params as JSON."""
    from pipelines.kubeflow import from_params

    problems = cluster_problems(doc, source_uri, data_version)
    if problems:
        raise ConfigError("cannot submit to Kubeflow: " + "; ".join(problems))
    kube = from_params(doc)
    task = load_task(doc).name
    return RunRequest(
        arguments={
            "source_uri": source_uri,
            "params_json": json.dumps(doc, sort_keys=True),
            "data_version": data_version,
        },
        run_name=run_name or f"{task}-{data_version[:12]}",
        experiment_name=experiment,
        pipeline_root=str(kube.pipeline_root),
        namespace=kube.namespace,
        service_account=kube.service_account,
    )


def create_run(host: str | None, package: Path, request: RunRequest) -> str:
    """Upload the compiled package as a run; returns the run id."""
    import kfp

    client = kfp.Client(host=host, **({"namespace": request.namespace} if request.namespace else {}))
    run = client.create_run_from_pipeline_package(
        str(package),
        arguments=request.arguments,
        run_name=request.run_name,
        experiment_name=request.experiment_name,
        namespace=request.namespace,
        pipeline_root=request.pipeline_root,
        enable_caching=request.enable_caching,
        service_account=request.service_account,
    )
    return str(run.run_id)


def submit_training(
    doc: dict[str, Any],
    source_uri: str,
    *,
    host: str | None,
    experiment: str,
    run_name: str | None = None,
    data_version: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Fingerprint the data (unless given), compile, create the run. `dry_run` stops before
    contacting the host and returns the request."""
    from pipelines.compile import compile_training
    from pipelines.datasource import fingerprint

    problems = cluster_problems(doc, source_uri, data_version)
    if problems:  # before hashing what may be a large dataset
        raise ConfigError("cannot submit to Kubeflow: " + "; ".join(problems))
    version = data_version or fingerprint(source_uri)
    request = run_request(doc, source_uri, version, experiment=experiment, run_name=run_name)
    if dry_run:
        return {"dry_run": True, "host": host, **request.summary()}
    with tempfile.TemporaryDirectory(prefix="lesionops-kfp-") as tmp:
        package = compile_training(doc, Path(tmp) / "training.yaml")
        run_id = create_run(host, package, request)
    return {
        "run_id": run_id,
        "host": host,
        "data_version": version,
        "run_name": request.run_name,
        "experiment": experiment,
        "pipeline_root": request.pipeline_root,
    }
