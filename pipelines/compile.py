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
    return written
