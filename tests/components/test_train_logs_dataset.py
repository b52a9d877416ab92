"""The training run records the patch dataset it learned from (crop_patches' lineage in MLflow)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run as crop
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.train_model.config import TrainConfig
from components.train_model.core import run as train
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.conftest import tiny_params


def test_training_run_logs_patch_dataset_report_and_contact_sheet(tiny_dataset: Path, tmp_path: Path) -> None:
    doc = tiny_params(
        tmp_path,
        train_model={"epochs": 1},
        crop_patches={"balance": {"target_per_class": 40}, "detection": {"enabled": False}},
    )
    task = load_task(doc)
    ingest(section(doc, "ingest_data", IngestConfig), tiny_dataset, tmp_path / "ingest")
    validate(section(doc, "validate_annotations", ValidateConfig), task, tmp_path / "ingest", tmp_path / "val")
    patches = crop(section(doc, "crop_patches", CropConfig), task, tmp_path / "val", tiny_dataset, tmp_path / "crop")
    tracking = section(doc, "mlflow", TrackingConfig)
    summary = train(section(doc, "train_model", TrainConfig), task, tracking, tmp_path / "crop", tmp_path / "train")
    client = mlflow.MlflowClient(tracking.tracking_uri)
    run = client.get_run(summary["run_id"])
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name == "patches" and dataset.tags[0].value == "training"
    assert int(run.data.params["n_train"]) == int((patches.split == "train").sum())
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "dataset")}
    assert logged == {"dataset/crop_report.json", "dataset/contact_sheet.png"}
