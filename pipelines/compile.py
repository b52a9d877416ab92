"""Compile the Kubeflow pipelines to YAML (what a Kubeflow cluster or a schedule is given).

Image, resources, GPUs, retries and caching come from params.yaml `kubeflow` (pipelines/kubeflow.py)
and are baked into the YAML; `params_json` is only the default of a run parameter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kfp import compiler

from components.common.params import section
from components.common.task import TaskConfig
from components.crossval.config import CrossvalConfig
from pipelines.kubeflow import KubeflowConfig
from pipelines.monitoring import build_monitoring_pipeline
from pipelines.schedule import RetrainConfig, parse_interval, recurring_run_spec
from pipelines.training import build_training_pipeline


def _kubeflow(params: dict[str, Any]) -> KubeflowConfig:
    return section(params, "kubeflow", KubeflowConfig)


def compile_training(params: dict[str, Any], path: Path) -> Path:
    """The training pipeline for the task's models, `params` as the default `params_json`."""
    pipeline = build_training_pipeline(
        section(params, "task", TaskConfig).models,
        _kubeflow(params),
        section(params, "crossval", CrossvalConfig).enabled,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        pipeline, str(path), pipeline_parameters={"params_json": json.dumps(params, sort_keys=True)}
    )
    return path


def compile_all(out_dir: Path, params: dict[str, Any], store_url: str) -> list[Path]:
    """Compile every pipeline with `params` baked in as the default `params_json`."""
    training = compile_training(params, out_dir / "training.yaml")
    monitoring = out_dir / "monitoring.yaml"
    compiler.Compiler().compile(
        build_monitoring_pipeline(_kubeflow(params)),
        str(monitoring),
        pipeline_parameters={"params_json": json.dumps(params, sort_keys=True)},
    )
    return [training, monitoring, _recurring_run(monitoring, params, store_url)]


def recurring_run_parameters(params: dict[str, Any], store_url: str) -> dict[str, Any]:
    """The monitoring run's parameters: a window of the serving store (`serve.store_url`, which
    the serving layer owns and passes in; on a cluster a PostgreSQL URL), its history beside the
    monitor's other outputs."""
    retrain = section(params, "retrain", RetrainConfig)
    return {
        "params_json": json.dumps(params, sort_keys=True),
        "store_url": store_url,
        "history_uri": f"{retrain.monitor_dir}/history.json",
    }


def _recurring_run(compiled: Path, params: dict[str, Any], store_url: str) -> Path:
    """The monitoring pipeline every `retrain.every`, as a KFP v2beta1 RecurringRun body
    (pipelines/schedule.py)."""
    kube = _kubeflow(params)
    spec = recurring_run_spec(
        compiled,
        recurring_run_parameters(params, store_url),
        every_s=parse_interval(section(params, "retrain", RetrainConfig).every),
        pipeline_root=kube.pipeline_root,
        service_account=kube.service_account,
    )
    path = compiled.with_name("monitoring-recurring-run.json")
    path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
