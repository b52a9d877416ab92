"""Kubeflow recurring-run spec for the monitoring pipeline (what `lesionops monitor --every` does
locally, done by the cluster's scheduler).

`recurring_run_spec` returns the body of `POST /apis/v2beta1/recurringruns` (KFP v2 API) with the
compiled pipeline inlined, so it can be reviewed in git, applied with `curl`, or submitted with
`submit_recurring_run` (kfp.Client). The field names are checked against kfp_server_api's model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.common.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class RetrainConfig:
    """The `retrain` section of params.yaml: where feedback goes and what a trigger launches."""

    every: str = "1h"  # `lesionops monitor` interval (also the Kubeflow recurring run's)
    target: str = "local"  # local: kfp.local on this machine | kubeflow: a run on `kubeflow_host`
    kubeflow_host: str | None = None  # KFP API endpoint; credentials from the standard kube config
    experiment: str = "lesionops"  # Kubeflow experiment the triggered runs are filed under
    data: str = "data"  # the DVC-tracked training dataset the feedback is merged into
    merge_folder: str = "feedback"  # subfolder of `data` that receives the accepted reports
    pipeline_root: str = ".kfp_local"
    monitor_dir: str = "outputs/monitor"  # one folder per window + history.json (the policy's memory)

    def __post_init__(self) -> None:
        parse_interval(self.every)
        if self.target not in ("local", "kubeflow"):
            raise ConfigError(f"retrain.target: 'local' or 'kubeflow', found {self.target!r}")
        if self.target == "kubeflow" and not self.kubeflow_host:
            raise ConfigError("retrain.target is 'kubeflow' but retrain.kubeflow_host is not set")
        if not self.merge_folder or Path(self.merge_folder).is_absolute() or ".." in Path(self.merge_folder).parts:
            raise ConfigError(f"retrain.merge_folder: a relative subfolder of the data, found {self.merge_folder!r}")


def parse_interval(text: str) -> float:
    """'90s', '15m', '1h', '1d' → seconds (what `lesionops monitor --every` accepts)."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--every: expected a positive duration like 30s, 15m, 1h or 1d; found {text!r}")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def trigger(every_s: float | None = None, cron: str | None = None) -> dict[str, Any]:
    """A periodic (every N seconds) or cron trigger; exactly one of the two."""
    if (every_s is None) == (cron is None):
        raise ConfigError("schedule: give exactly one of an interval (e.g. 1h) or a cron expression")
    if cron is not None:
        if len(cron.split()) not in (5, 6):  # KFP accepts 6-field cron (with seconds) and 5-field
            raise ConfigError(f"schedule: cron expression needs 5 or 6 fields, found {cron!r}")
        return {"cron_schedule": {"cron": cron}}
    if every_s is None or every_s < 60:
        raise ConfigError(f"schedule: Kubeflow recurring runs need an interval of at least 60 s, found {every_s}")
    return {"periodic_schedule": {"interval_second": str(int(every_s))}}


def recurring_run_spec(
    compiled: Path,
    parameters: dict[str, Any],
    *,
    every_s: float | None = None,
    cron: str | None = None,
    name: str = "lesionops-monitoring",
    max_concurrency: int = 1,
    pipeline_root: str | None = None,
    service_account: str | None = None,
) -> dict[str, Any]:
    """The RecurringRun body: no catch-up (a scheduler that was down does not replay missed
    windows: each window is "the latest N predictions"), one run at a time. `pipeline_root` and
    `service_account` (params.yaml `kubeflow`) are left out when unset: the cluster's defaults."""
    if not compiled.is_file():
        raise ConfigError(f"{compiled}: compiled pipeline not found; run `lesionops pipeline compile` first")
    spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
    declared = set(spec.get("root", {}).get("inputDefinitions", {}).get("parameters") or {})
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise ConfigError(f"{compiled}: pipeline has no parameter(s) {unknown}; it declares {sorted(declared)}")
    runtime: dict[str, Any] = {"parameters": parameters}
    if pipeline_root:
        runtime["pipeline_root"] = pipeline_root
    body = {
        "display_name": name,
        "description": f"{spec.get('pipelineInfo', {}).get('name', name)} on a schedule",
        "pipeline_spec": spec,
        "runtime_config": runtime,
        "trigger": trigger(every_s, cron),
        "max_concurrency": str(max_concurrency),
        "no_catchup": True,
        "mode": "ENABLE",
    }
    return {**body, "service_account": service_account} if service_account else body


def submit_recurring_run(
    host: str | None,
    compiled: Path,
    parameters: dict[str, Any],
    experiment: str,
    *,
    every_s: float | None = None,
    cron: str | None = None,
    name: str = "lesionops-monitoring",
    pipeline_root: str | None = None,
    service_account: str | None = None,
    namespace: str | None = None,
) -> str:
    """Create the recurring run on a Kubeflow Pipelines endpoint (None: KF_PIPELINES_ENDPOINT or
    the in-cluster service; credentials from the kube config / KF_PIPELINES_* env); returns its id."""
    import kfp

    spec = recurring_run_spec(
        compiled,
        parameters,
        every_s=every_s,
        cron=cron,
        name=name,
        pipeline_root=pipeline_root,
        service_account=service_account,
    )
    client = kfp.Client(host=host, **({"namespace": namespace} if namespace else {}))
    exp = client.create_experiment(experiment, namespace=namespace)
    when = spec["trigger"]
    job = client.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name=name,
        pipeline_package_path=str(compiled),
        params=parameters,
        interval_second=int(when["periodic_schedule"]["interval_second"]) if "periodic_schedule" in when else None,
        cron_expression=when.get("cron_schedule", {}).get("cron"),
        max_concurrency=1,
        no_catchup=True,
        pipeline_root=pipeline_root,
        enable_caching=None,
        service_account=service_account,
    )
    return str(job.recurring_run_id)
