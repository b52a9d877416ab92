"""The training pipeline: ingest → validate → crop → {baseline, classifier, detector} → gates → promote.

The task's `models` (params.yaml `task.models`) decide which branches the pipeline has; each
model kind is trained, evaluated against its champion on the same test split, and promoted only
inside its own `dsl.If` on its gate verdict.
"""

from collections.abc import Callable, Sequence
from typing import Any

from kfp import dsl

from components.crop_patches.component import crop_patches
from components.evaluate_detector.component import evaluate_detector
from components.evaluate_model.component import evaluate_model
from components.ingest_data.component import ingest_data
from components.promote_model.component import promote_model
from components.train_baseline.component import train_baseline
from components.train_detector.component import train_detector
from components.train_model.component import train_model
from components.validate_annotations.component import validate_annotations

# No `from __future__ import annotations` here: kfp reads the pipeline's annotations as types.
PIPELINE_NAME = "lesionops-training"
MODEL_KINDS = ("classifier", "detector")


def _classifier_branch(patches: Any, validation: Any, params_json: str, data_version: str) -> None:
    baseline = train_baseline(patches=patches, params_json=params_json, data_version=data_version)
    train = train_model(patches=patches, params_json=params_json, data_version=data_version)
    evaluate = evaluate_model(patches=patches, model=train.outputs["model"], baseline=baseline.outputs["baseline"],
                              validation=validation, params_json=params_json)
    with dsl.If(evaluate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (kfp DSL)
        promote_model(model=train.outputs["model"], evaluation=evaluate.outputs["evaluation"], patches=patches,
                      params_json=params_json)


def _detector_branch(patches: Any, params_json: str, data_version: str) -> None:
    train = train_detector(patches=patches, params_json=params_json, data_version=data_version)
    evaluate = evaluate_detector(patches=patches, model=train.outputs["model"], params_json=params_json)
    with dsl.If(evaluate.outputs["Output"] == True, name="detector-gate-passed"):  # noqa: E712 (kfp DSL)
        promote_model(model=train.outputs["model"], evaluation=evaluate.outputs["evaluation"], patches=patches,
                      params_json=params_json).set_display_name("promote_detector")


def build_training_pipeline(models: Sequence[str] = ("classifier",)) -> Callable[..., None]:
    """The pipeline for a task that trains `models` (a subset of MODEL_KINDS)."""
    unknown = set(models) - set(MODEL_KINDS)
    if unknown or not models:
        raise ValueError(f"models: a non-empty subset of {MODEL_KINDS}, found {list(models)}")

    @dsl.pipeline(name=PIPELINE_NAME,
                  description=f"Train, gate and promote lesion models ({', '.join(models)}) from labelImg data.")
    def training_pipeline(source_uri: str, params_json: str, data_version: str = "unknown") -> None:
        ingest = ingest_data(source_uri=source_uri, params_json=params_json).set_display_name("ingest_data")
        validate = validate_annotations(manifest=ingest.outputs["manifest"], params_json=params_json)
        crop = crop_patches(accepted=validate.outputs["accepted"], source_uri=source_uri, params_json=params_json)
        if "classifier" in models:
            _classifier_branch(crop.outputs["patches"], validate.outputs["accepted"], params_json, data_version)
        if "detector" in models:
            _detector_branch(crop.outputs["patches"], params_json, data_version)

    return training_pipeline


training_pipeline = build_training_pipeline()
