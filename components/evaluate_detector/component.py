"""Kubeflow interface of evaluate_detector: also surfaces the gate verdict for `dsl.If`."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_detector(
    patches: dsl.Input[dsl.Dataset],
    model: dsl.Input[dsl.Model],
    params_json: str,
    evaluation: dsl.Output[dsl.Artifact],
    metrics: dsl.Output[dsl.Metrics],
) -> bool:
    """Returns whether the gate passed. A single unnamed output on purpose: kfp.local (2.16)
    resolves `dsl.If` conditions only on a task's default `Output`. `metrics`: metrics.json's
    scalars (mAP@0.5, COCO mAP) in the KFP UI."""
    import json
    import os
    from pathlib import Path

    from components.common.kfp_outputs import log_metrics
    from components.common.launch import launch

    launch(
        "evaluate_detector",
        ["--patches", patches.path, "--model", model.path, "--out", evaluation.path, "--params-json", params_json],
    )
    log_metrics(metrics, Path(evaluation.path) / "metrics.json")
    with open(os.path.join(evaluation.path, "decision.json"), encoding="utf-8") as fh:
        return bool(json.load(fh)["passed"])
