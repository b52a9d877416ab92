"""CUDA path of train_model: bf16 autocast on the GPU, same entry point (skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.crop_patches.core import CropConfig
from components.crop_patches.core import run as crop
from components.ingest_data.core import IngestConfig
from components.ingest_data.core import run as ingest
from components.train_model.core import TrainConfig
from components.train_model.core import run as train
from components.validate_annotations.checks import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.conftest import tiny_params


@pytest.mark.gpu
def test_training_runs_on_cuda_with_bf16(tiny_dataset: Path, tmp_path: Path) -> None:
    doc = tiny_params(tmp_path, train_model={"device": "cuda", "arch": "resnet18", "epochs": 2})
    task = load_task(doc)
    ingest(section(doc, "ingest_data", IngestConfig), tiny_dataset, tmp_path / "i")
    validate(section(doc, "validate_annotations", ValidateConfig), task, tmp_path / "i", tmp_path / "v")
    crop(section(doc, "crop_patches", CropConfig), task, tmp_path / "v", tiny_dataset, tmp_path / "c")
    summary = train(section(doc, "train_model", TrainConfig), task, section(doc, "mlflow", TrackingConfig),
                    tmp_path / "c", tmp_path / "t")
    assert summary["epochs_run"] == 2 and 0.0 <= summary["best_val_macro_f1"] <= 1.0
