"""Kubeflow recurring-run spec for the monitoring pipeline (what `lesionops monitor --every` does
locally, done by the cluster's scheduler).

`recurring_run_spec` returns the body of `POST /apis/v2beta1/recurringruns` (KFP v2 API) with the
compiled pipeline inlined, so it can be reviewed in git, applied with `curl`, or submitted with
`submit_recurring_run` (kfp.Client). The field names are checked against kfp_server_api's model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.common.errors import ConfigError


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


def recurring_run_spec(compiled: Path, parameters: dict[str, Any], *, every_s: float | None = None,
                       cron: str | None = None, name: str = "lesionops-monitoring",
                       max_concurrency: int = 1, pipeline_root: str | None = None,
                       service_account: str | None = None) -> dict[str, Any]:
    """The RecurringRun body: no catch-up (a scheduler that was down does not replay missed
    windows: each window is "the latest N predictions"), one run at a time. `pipeline_root` and
    `service_account` (params.yaml `kubeflow`) are left out when unset: the cluster's defaults."""
    if not compiled.is_file():
        raise ConfigError(f"{compiled}: compiled pipeline not found; run `lesionops pipeline compile` first")
    spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
    declared = set((spec.get("root", {}).get("inputDefinitions", {}).get("parameters") or {}))
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise ConfigError(f"{compiled}: pipeline has no parameter(s) {unknown}; it declares {sorted(declared)}")
    runtime: dict[str, Any] = {"parameters": parameters}
    if pipeline_root:
        runtime["pipeline_root"] = pipeline_root
    body = {"display_name": name, "description": f"{spec.get('pipelineInfo', {}).get('name', name)} on a schedule",
            "pipeline_spec": spec, "runtime_config": runtime,
            "trigger": trigger(every_s, cron), "max_concurrency": str(max_concurrency),
            "no_catchup": True, "mode": "ENABLE"}
    return {**body, "service_account": service_account} if service_account else body


def submit_recurring_run(host: str | None, compiled: Path, parameters: dict[str, Any], experiment: str, *,
                         every_s: float | None = None, cron: str | None = None,
                         name: str = "lesionops-monitoring", pipeline_root: str | None = None,
                         service_account: str | None = None, namespace: str | None = None) -> str:
    """Create the recurring run on a Kubeflow Pipelines endpoint (None: KF_PIPELINES_ENDPOINT or
    the in-cluster service; credentials from the kube config / KF_PIPELINES_* env); returns its id."""
    import kfp

    spec = recurring_run_spec(compiled, parameters, every_s=every_s, cron=cron, name=name,
                              pipeline_root=pipeline_root, service_account=service_account)
    client = kfp.Client(host=host, **({"namespace": namespace} if namespace else {}))
    exp = client.create_experiment(experiment, namespace=namespace)
    when = spec["trigger"]
    job = client.create_recurring_run(
        experiment_id=exp.experiment_id, job_name=name, pipeline_package_path=str(compiled), params=parameters,
        interval_second=int(when["periodic_schedule"]["interval_second"]) if "periodic_schedule" in when else None,
        cron_expression=when.get("cron_schedule", {}).get("cron"), max_concurrency=1, no_catchup=True,
        pipeline_root=pipeline_root, enable_caching=None, service_account=service_account)
    return str(job.recurring_run_id)
