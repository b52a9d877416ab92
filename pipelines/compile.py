"""Compile the Kubeflow pipelines to YAML (what a Kubeflow cluster or a schedule is given)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kfp import compiler


def compile_all(out_dir: Path, params: dict[str, Any]) -> list[Path]:
    """Compile every pipeline with `params` baked in as the default `params_json`."""
    from components.common.params import section
    from components.common.task import TaskConfig
    from pipelines.monitoring import monitoring_pipeline
    from pipelines.training import build_training_pipeline

    training_pipeline = build_training_pipeline(section(params, "task", TaskConfig).models)

    out_dir.mkdir(parents=True, exist_ok=True)
    defaults = {"params_json": json.dumps(params, sort_keys=True)}
    written = []
    for name, pipeline in (("training", training_pipeline), ("monitoring", monitoring_pipeline)):
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(path), pipeline_parameters=defaults)
        written.append(path)
    written.append(_recurring_run(out_dir / "monitoring.yaml", params))
    return written


def _recurring_run(compiled: Path, params: dict[str, Any]) -> Path:
    """The monitoring pipeline every `retrain.every` on the serving store (`serve.store_url`; on a
    cluster a PostgreSQL URL), as a KFP v2beta1 RecurringRun body (pipelines/schedule.py)."""
    from lesionops.retrain import RetrainConfig, parse_interval
    from components.common.params import section
    from lesionops.serve.config import ServeConfig
    from pipelines.schedule import recurring_run_spec

    retrain, serve = section(params, "retrain", RetrainConfig), section(params, "serve", ServeConfig)
    spec = recurring_run_spec(compiled, {"params_json": json.dumps(params, sort_keys=True),
                                         "store_url": serve.store_url,
                                         "history_uri": f"{retrain.monitor_dir}/history.json"},
                              every_s=parse_interval(retrain.every))
    path = compiled.with_name("monitoring-recurring-run.json")
    path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
