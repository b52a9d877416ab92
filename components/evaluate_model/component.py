"""Kubeflow interface of evaluate_model: also surfaces the gate verdict for `dsl.If`."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_model(
    patches: dsl.Input[dsl.Dataset],
    model: dsl.Input[dsl.Model],
    baseline: dsl.Input[dsl.Artifact],
    validation: dsl.Input[dsl.Artifact],
    params_json: str,
    evaluation: dsl.Output[dsl.Artifact],
    metrics: dsl.Output[dsl.Metrics],
    classification: dsl.Output[dsl.ClassificationMetrics],
) -> bool:
    """Returns whether the gate passed. A single unnamed output on purpose: kfp.local (2.16)
    resolves `dsl.If` conditions only on a task's default `Output`. `baseline` is train_baseline's
    output, `validation` validate_annotations' report folder (both feed gate rules). `metrics` and
    `classification` put metrics.json's scalars, the confusion matrix and the ROC in the KFP UI."""
    import json
    import os
    from pathlib import Path

    from components.common.kfp_outputs import log_classification, log_metrics
    from components.common.launch import launch

    launch(
        "evaluate_model",
        [
            "--patches",
            patches.path,
            "--model",
            model.path,
            "--baseline",
            baseline.path,
            "--validation",
            validation.path,
            "--out",
            evaluation.path,
            "--params-json",
            params_json,
        ],
    )
    log_metrics(metrics, Path(evaluation.path) / "metrics.json")
    log_classification(classification, Path(evaluation.path))
    with open(os.path.join(evaluation.path, "decision.json"), encoding="utf-8") as fh:
        return bool(json.load(fh)["passed"])
