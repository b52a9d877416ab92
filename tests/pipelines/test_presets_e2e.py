"""Every seed system end to end on tiny generated data: the preset's own generator and settings,
through the real stage functions (ingest → validate → crop → train → evaluate), and once through
the real `lesionops pipeline run --task` CLI on kfp.local."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import yaml

from components.common.params import section
from components.common.settings import apply_overrides, deep_merge, load_preset
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run as crop
from components.evaluate_model.core import EvaluateConfig
from components.evaluate_model.core import run as evaluate
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.train_model.config import TrainConfig
from components.train_model.core import run as train
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from lesionops.champion import champion_summary
from lesionops.presets import generate, synth_settings
from tests.conftest import tiny_params

# A run small enough for one CPU core: ~36 images, 32 px patches, small_cnn for 2 epochs.
# Splits hash patient ids, and every generator names its patients P0001, P0002, …: under this salt
# each split of the 36-image sets below (7-25 patients) gets every class, so the classic baseline
# and per-class metrics have something to work on. Tolerate an empty class anyway: a smoke run on a
# few patients must not hinge on the hash.
SHRINK: dict[str, Any] = {
    "crop_patches": {
        "patch_size": 32,
        "workers": 1,
        "split": {"salt": "tiny-23"},
        "balance": {"target_per_class": 12, "fail_on_empty_class": False},
        "detection": {"enabled": False},
        "contact_sheet_per_class": 2,
    },
    "train_model": {
        "arch": "small_cnn",
        "image_size": 32,
        "epochs": 2,
        "min_steps": 0,
        "batch_size": 16,
        "threads": 1,
        "patience": 2,
    },
    "evaluate_model": {
        "bootstrap": {"n_resamples": 50},
        "gate": {
            "min_accuracy": 0.0,
            "min_macro_f1": 0.0,
            "min_class_recall": 0.0,
            "min_test_samples": 1,
            "min_gain_vs_baseline": -1.0,
        },
    },
}
# preset → (images, width, height, extra overrides); es_skin runs its classifier half here
CLASSIFIERS = {
    "chest_xray": (36, 64, 64, {}),
    "ct_pneumonia": (36, 64, 64, {}),
    "monkeypox": (36, 64, 64, {}),
    "es_skin": (36, 128, 96, {"task": {"models": ["classifier"]}, "synth": {"class_priors": [0.5, 0.5]}}),
}
HAS_DETECTOR = importlib.util.find_spec("components.train_detector") is not None  # landed concurrently


def _preset_params(tmp: Path, preset: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The preset over the tiny test params (own MLflow store), shrunk for CPU."""
    return deep_merge(deep_merge(load_preset(preset, tiny_params(tmp)), SHRINK), extra)


@pytest.mark.parametrize("preset", sorted(CLASSIFIERS))
def test_classifier_preset_end_to_end_through_the_stage_functions(preset: str, tmp_path: Path) -> None:
    n, width, height, extra = CLASSIFIERS[preset]
    doc = _preset_params(tmp_path, preset, extra)
    task, tracking = load_task(doc), section(doc, "mlflow", TrackingConfig)
    settings = dataclasses.replace(synth_settings(doc), n_images=n, image_width=width, image_height=height)
    data = tmp_path / "data"
    generate(settings, task.classes, data, progress=False)

    ingest(section(doc, "ingest_data", IngestConfig), data, tmp_path / "ingest")
    report = validate(
        section(doc, "validate_annotations", ValidateConfig), task, tmp_path / "ingest", tmp_path / "validate", tracking
    )
    assert report["passed"] and report["n_quarantined"] == 0
    patches = crop(section(doc, "crop_patches", CropConfig), task, tmp_path / "validate", data, tmp_path / "crop")
    assert set(patches.split) == {"train", "val", "test"}
    assert (patches.groupby("patient_id").split.nunique() == 1).all()
    assert set(patches.label) == set(task.classes)
    if task.sample == "whole_image":  # one sample per image, the folder's label
        crops = pd.read_parquet(tmp_path / "crop" / "crops.parquet")
        assert (crops.box_index == -1).all() and len(crops) == n
        assert (crops.rel_path.str.split("/").str[0] == crops.label).all()

    summary = train(section(doc, "train_model", TrainConfig), task, tracking, tmp_path / "crop", tmp_path / "train")
    assert summary["classes"] == list(task.classes) and summary["epochs_run"] <= 2
    run = mlflow.MlflowClient(tracking.tracking_uri).get_run(summary["run_id"])
    assert run.data.params["task"] == preset
    assert (
        mlflow.MlflowClient(tracking.tracking_uri).get_experiment(run.info.experiment_id).name
        == f"{tracking.experiment}-{preset}"
    )

    decision = evaluate(
        section(doc, "evaluate_model", EvaluateConfig),
        task,
        tracking,
        tmp_path / "crop",
        tmp_path / "train",
        tmp_path / "evaluate",
    )
    metrics = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert metrics["n_test"] == int((patches.split == "test").sum()) > 0
    assert isinstance(decision["passed"], bool) and decision["rules"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lesionops", *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600
    )


def _flatten(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _flatten(f"{prefix}.{k}", v)]
    return [f"{prefix}={json.dumps(value)}"]


def _tiny_sets(data: tuple[int, int, int]) -> list[str]:
    """`--set` arguments that shrink a preset run (the preset wins over --params, --set over both)."""
    n, width, height = data
    sets = [s for key, value in SHRINK.items() for s in _flatten(key, value)]
    return sets + [f"synth.n_images={n}", f"synth.image_width={width}", f"synth.image_height={height}"]


def test_cli_pipeline_run_task_chest_xray_generates_data_and_runs_kfp_local(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tmp_path)))
    args = [f"--set={s}" for s in _tiny_sets((36, 64, 64))]
    result = _cli(tmp_path, "pipeline", "run", "--task", "chest_xray", "--pipeline-root", "kfp", *args)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = " ".join(result.stdout.split())
    assert "generating the chest_xray preset's synthetic data" in out and "pipeline finished" in out
    assert len(list((tmp_path / "datasets" / "chest_xray").rglob("*.jpeg"))) == 36
    [run_dir] = [d for d in (tmp_path / "kfp").iterdir() if d.is_dir()]
    [metrics_file] = list((run_dir / "evaluate-model").rglob("metrics.json"))
    [decision_file] = list((run_dir / "evaluate-model").rglob("decision.json"))
    assert json.loads(metrics_file.read_text())["n_test"] > 0
    [crops_file] = list((run_dir / "crop-patches").rglob("crops.parquet"))
    assert set(pd.read_parquet(crops_file).label) == {"normal", "pneumonia"}
    doc = apply_overrides(load_preset("chest_xray", tiny_params(tmp_path)), _tiny_sets((36, 64, 64)))
    champion = champion_summary(section(doc, "mlflow", TrackingConfig))
    passed = json.loads(decision_file.read_text())["passed"]
    assert (champion is not None) == passed  # promoted exactly when the gate said so
    if passed:
        assert champion is not None and champion["name"] == "chest_xray_classifier" and champion["version"] == "1"


@pytest.mark.skipif(not HAS_DETECTOR, reason="components.train_detector (the detector stage) is not in this checkout")
@pytest.mark.parametrize(
    ("preset", "data", "extra"),
    [
        ("acupoint", (24, 96, 128), {}),
        ("es_skin", (36, 128, 96), {"synth": {"class_priors": [0.5, 0.5]}}),
    ],
)
def test_detector_preset_end_to_end_through_the_stage_functions(
    preset: str, data: tuple[int, int, int], extra: dict[str, Any], tmp_path: Path
) -> None:
    from components.evaluate_detector.config import EvaluateDetectorConfig
    from components.evaluate_detector.core import run as evaluate_detector
    from components.train_detector.config import DetectorConfig
    from components.train_detector.core import run as train_detector

    tiny_detector = {
        "train_detector": {"epochs": 1, "batch_size": 2, "threads": 1, "min_size": 128, "max_size": 128},
        "crop_patches": {"detection": {"enabled": True}},
        "evaluate_detector": {"gate": {"min_map50": 0.0, "min_test_images": 1}},
    }
    doc = _preset_params(tmp_path, preset, deep_merge(extra, tiny_detector))
    task, tracking = load_task(doc), section(doc, "mlflow", TrackingConfig)
    assert "detector" in task.models
    n, width, height = data
    settings = dataclasses.replace(synth_settings(doc), n_images=n, image_width=width, image_height=height)
    source = tmp_path / "data"
    done = generate(settings, task.classes, source, progress=False)
    assert done.n_boxes > 0

    ingest(section(doc, "ingest_data", IngestConfig), source, tmp_path / "ingest")
    report = validate(
        section(doc, "validate_annotations", ValidateConfig), task, tmp_path / "ingest", tmp_path / "validate", tracking
    )
    assert report["passed"] and report["n_accepted_boxes"] == done.n_boxes
    crop(section(doc, "crop_patches", CropConfig), task, tmp_path / "validate", source, tmp_path / "crop")
    coco = json.loads((tmp_path / "crop" / "detection" / "annotations_train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(task.classes) and coco["annotations"]

    summary = train_detector(
        section(doc, "train_detector", DetectorConfig), task, tracking, tmp_path / "crop", tmp_path / "train_detector"
    )
    assert summary["registered_model"] == f"{preset}_detector" and summary["classes"] == list(task.classes)
    decision = evaluate_detector(
        section(doc, "evaluate_detector", EvaluateDetectorConfig),
        task,
        tracking,
        tmp_path / "crop",
        tmp_path / "train_detector",
        tmp_path / "evaluate_detector",
    )
    assert isinstance(decision["passed"], bool) and decision["rules"]
    metrics = json.loads((tmp_path / "evaluate_detector" / "metrics.json").read_text())
    assert set(metrics["per_class_ap50"]) == set(task.classes)
