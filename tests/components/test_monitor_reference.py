"""The drift reference: built by evaluate_model from the real stages, logged with the run, read back
through the champion alias; and the patch fallback when the crop output carries no raw images."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.common.drift_reference import champion_reference, image_rows, load_reference
from components.common.image_stats import FEATURES
from components.common.io import read_json
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run as crop
from components.evaluate_model.core import EvaluateConfig
from components.evaluate_model.core import run as evaluate
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.core import run, run_store
from components.train_model.config import TrainConfig
from components.train_model.core import run as train
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.conftest import tiny_params


@pytest.mark.slow
def test_evaluate_writes_and_logs_the_reference_the_monitor_uses(tiny_dataset: Path, tmp_path: Path) -> None:
    doc = tiny_params(tmp_path, train_model={"epochs": 2}, crop_patches={"balance": {"target_per_class": 40}})
    task, tracking = load_task(doc), section(doc, "mlflow", TrackingConfig)
    ingest(section(doc, "ingest_data", IngestConfig), tiny_dataset, tmp_path / "ingest")
    validate(section(doc, "validate_annotations", ValidateConfig), task, tmp_path / "ingest", tmp_path / "val")
    crop(section(doc, "crop_patches", CropConfig), task, tmp_path / "val", tiny_dataset, tmp_path / "crop")
    summary = train(section(doc, "train_model", TrainConfig), task, tracking, tmp_path / "crop", tmp_path / "train")
    evaluate(
        section(doc, "evaluate_model", EvaluateConfig),
        task,
        tracking,
        tmp_path / "crop",
        tmp_path / "train",
        tmp_path / "eval",
    )

    folder = tmp_path / "eval" / "reference"
    meta = read_json(folder / "reference.json")
    patches = pd.read_parquet(tmp_path / "crop" / "patches.parquet")
    held_out = patches[patches.split.isin(["val", "test"])]
    train_images = set(patches[patches.split == "train"].rel_path)
    assert meta["pixels"] == "raw" and meta["features"] == list(FEATURES) and meta["max_side"] == 256
    assert meta["n_model_rows"] == len(held_out) and meta["n_images"] == len(train_images)
    assert meta["embedding_dim"] == 192  # small_cnn: the input of its last Linear
    ref = load_reference(folder)
    assert set(ref.images.path) == train_images
    assert set(ref.images.patient_id) == set(patches[patches.split == "train"].patient_id)
    assert set(ref.model.patient_id) == set(held_out.patient_id)
    assert ref.images.width.eq(160).all() and ref.images.height.eq(120).all()  # the raw photos, not patches
    assert meta["skin_tone"] and ref.images.ita.between(-90, 90).all()  # synthetic skin: every tone measured
    assert set(ref.model.predicted_class) <= set(task.classes) and ref.model.confidence.between(0, 1).all()
    assert ref.model.correct.mean() == pytest.approx(meta["accuracy"])
    assert ref.embeddings().shape == (len(held_out), 192)

    client = mlflow.MlflowClient(tracking.tracking_uri)
    logged = {f.path for f in client.list_artifacts(summary["run_id"], "reference")}
    assert logged == {"reference/model.parquet", "reference/images.parquet", "reference/reference.json"}

    cfg = MonitorConfig(min_window=10)
    none_yet = run_store(cfg, f"sqlite:///{tmp_path / 'serving.db'}", tmp_path / "m0", tracking=tracking)
    assert none_yet["drift"]["verdict"] == "no_reference"
    version = mlflow.register_model(summary["model_uri"], tracking.registered_model).version
    client.set_registered_model_alias(tracking.registered_model, "champion", version)
    champ, where = champion_reference(tracking, dst=tmp_path / "dl")
    assert champ is not None and champ.meta["model_version"] == str(version) and f"version {version}" in where
    assert len(champ.model) == len(held_out)
    served = run_store(cfg, f"sqlite:///{tmp_path / 'serving.db'}", tmp_path / "m1", tracking=tracking)
    assert served["drift"]["verdict"] == "insufficient_data" and "@champion" in served["drift"]["reference"]

    # Folder mode against the logged reference: the dataset's own photos are no drift.
    result = run(cfg, folder, None, tiny_dataset, tmp_path / "m2")
    assert result["drift"]["verdict"] == "no_drift", result["drift"]["checks"]


def test_without_raw_images_the_train_patches_are_used_and_labelled(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        rel = f"ab/{i:04d}.png"
        (tmp_path / "patches" / "ab").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "patches" / rel)
        rows.append(
            {
                "patch_path": rel,
                "rel_path": f"img{i // 2}.jpg",
                "patient_id": f"P{i // 4}",
                "split": "train" if i < 4 else "val",
                "augment": "none" if i != 3 else "hflip",
                "image_width": 640,
                "image_height": 480,
            }
        )
    pd.DataFrame(rows).to_parquet(tmp_path / "patches.parquet")
    frame, pixels = image_rows(tmp_path, 256)
    assert pixels == "patch" and len(frame) == 3  # train, augmented copies left out
    assert frame.width.eq(640).all() and frame.height.eq(480).all()  # sizes of the raw images
    assert set(frame.path) == {"patches/ab/0000.png", "patches/ab/0001.png", "patches/ab/0002.png"}
    assert set(frame.patient_id) == {"P0"}
    assert "ita" not in frame  # a lesion crop is not the skin around it: no skin-tone reference


def test_a_champion_without_reference_artifacts_is_no_reference(tmp_path: Path) -> None:
    tracking = TrackingConfig(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=str(tmp_path / "artifacts"),
        registered_model="old_model",
    )
    from components.common.tracking import setup

    setup(tracking)
    with mlflow.start_run() as active:
        mlflow.log_text("no reference here", "notes.txt")
    client = mlflow.MlflowClient()
    client.create_registered_model("old_model")
    version = client.create_model_version("old_model", f"runs:/{active.info.run_id}/notes.txt", active.info.run_id)
    client.set_registered_model_alias("old_model", "champion", version.version)
    ref, why = champion_reference(tracking, dst=tmp_path / "dl")
    assert ref is None and "has no 'reference/' artifacts" in why
