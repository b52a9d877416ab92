"""The training pipeline: ingest → validate → crop → {baseline, classifier, crossval, detector} → gates → promote.

The task's `models` (params.yaml `task.models`) decide which branches the pipeline has; each
model kind is trained, evaluated against its champion on the same test split, and promoted only
inside its own `dsl.If` on its gate verdict. Every task goes through pipelines/kubeflow.py
`configure` (image, resources, GPUs, retries, caching from params.yaml `kubeflow`).
"""

from collections.abc import Callable, Sequence
from typing import Any

from kfp import dsl

from components.crop_patches.component import crop_patches
from components.crossval.component import crossval
from components.evaluate_detector.component import evaluate_detector
from components.evaluate_model.component import evaluate_model
from components.ingest_data.component import ingest_data
from components.promote_model.component import promote_model
from components.train_baseline.component import train_baseline
from components.train_detector.component import train_detector
from components.train_model.component import train_model
from components.validate_annotations.component import validate_annotations
from pipelines.kubeflow import KubeflowConfig, configure

# No `from __future__ import annotations` here: kfp reads the pipeline's annotations as types.
PIPELINE_NAME = "lesionops-training"
MODEL_KINDS = ("classifier", "detector")


def _classifier_branch(patches: Any, validation: Any, params_json: str, data_version: str, cfg: KubeflowConfig) -> None:
    baseline = configure(
        train_baseline(patches=patches, params_json=params_json, data_version=data_version), "train_baseline", cfg
    )
    train = configure(
        train_model(
            patches=patches,
            params_json=params_json,
            data_version=data_version,
            nproc_per_node=cfg.nproc_per_node("train_model"),
        ),
        "train_model",
        cfg,
    )
    evaluate = configure(
        evaluate_model(
            patches=patches,
            model=train.outputs["model"],
            baseline=baseline.outputs["baseline"],
            validation=validation,
            params_json=params_json,
        ),
        "evaluate_model",
        cfg,
    )
    with dsl.If(evaluate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (kfp DSL)
        configure(
            promote_model(
                model=train.outputs["model"],
                evaluation=evaluate.outputs["evaluation"],
                patches=patches,
                params_json=params_json,
            ),
            "promote_model",
            cfg,
        )


def _detector_branch(patches: Any, params_json: str, data_version: str, cfg: KubeflowConfig) -> None:
    train = configure(
        train_detector(patches=patches, params_json=params_json, data_version=data_version), "train_detector", cfg
    )
    evaluate = configure(
        evaluate_detector(patches=patches, model=train.outputs["model"], params_json=params_json),
        "evaluate_detector",
        cfg,
    )
    with dsl.If(evaluate.outputs["Output"] == True, name="detector-gate-passed"):  # noqa: E712 (kfp DSL)
        configure(
            promote_model(
                model=train.outputs["model"],
                evaluation=evaluate.outputs["evaluation"],
                patches=patches,
                params_json=params_json,
            ),
            "promote_model",
            cfg,
        ).set_display_name("promote_detector")


def build_training_pipeline(
    models: Sequence[str] = ("classifier",), kubeflow: KubeflowConfig | None = None, crossval_enabled: bool = False
) -> Callable[..., None]:
    """The pipeline for a task that trains `models` (a subset of MODEL_KINDS), its tasks set up
    by `kubeflow` (default: KubeflowConfig's defaults); with `crossval_enabled` (params
    `crossval.enabled`) the classifier branch also runs the k-fold report (DVC always has the stage,
    which then only records that it was skipped)."""
    unknown = set(models) - set(MODEL_KINDS)
    if unknown or not models:
        raise ValueError(f"models: a non-empty subset of {MODEL_KINDS}, found {list(models)}")
    cfg = kubeflow or KubeflowConfig()

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=f"Train, gate and promote lesion models ({', '.join(models)}) from labelImg data.",
    )
    def training_pipeline(source_uri: str, params_json: str, data_version: str = "unknown") -> None:
        ingest = configure(
            ingest_data(source_uri=source_uri, params_json=params_json, data_version=data_version), "ingest_data", cfg
        ).set_display_name("ingest_data")
        validate = configure(
            validate_annotations(manifest=ingest.outputs["manifest"], params_json=params_json),
            "validate_annotations",
            cfg,
        )
        crop = configure(
            crop_patches(accepted=validate.outputs["accepted"], source_uri=source_uri, params_json=params_json),
            "crop_patches",
            cfg,
        )
        if "classifier" in models:
            _classifier_branch(crop.outputs["patches"], validate.outputs["accepted"], params_json, data_version, cfg)
            if crossval_enabled:
                configure(
                    crossval(patches=crop.outputs["patches"], params_json=params_json, data_version=data_version),
                    "crossval",
                    cfg,
                )
        if "detector" in models:
            _detector_branch(crop.outputs["patches"], params_json, data_version, cfg)

    return training_pipeline


training_pipeline = build_training_pipeline()
