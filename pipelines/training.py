"""The training pipeline: ingest → validate → crop → train → evaluate → (gate) → promote."""

from kfp import dsl

from components.crop_patches.component import crop_patches
from components.evaluate_model.component import evaluate_model
from components.ingest_data.component import ingest_data
from components.promote_model.component import promote_model
from components.train_model.component import train_model
from components.validate_annotations.component import validate_annotations

PIPELINE_NAME = "lesionops-training"


@dsl.pipeline(name=PIPELINE_NAME, description="Train, gate and promote a lesion classifier from labelImg data.")
def training_pipeline(source_uri: str, params_json: str, data_version: str = "unknown") -> None:
    ingest = ingest_data(source_uri=source_uri, params_json=params_json).set_display_name("ingest_data")
    validate = validate_annotations(manifest=ingest.outputs["manifest"], params_json=params_json)
    crop = crop_patches(accepted=validate.outputs["accepted"], source_uri=source_uri, params_json=params_json)
    train = train_model(patches=crop.outputs["patches"], params_json=params_json, data_version=data_version)
    evaluate = evaluate_model(patches=crop.outputs["patches"], model=train.outputs["model"],
                              params_json=params_json)
    with dsl.If(evaluate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (kfp DSL)
        promote_model(model=train.outputs["model"], evaluation=evaluate.outputs["evaluation"],
                      params_json=params_json)
