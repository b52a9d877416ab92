"""One-class detection, the most common real labelImg project, end to end: a folder whose boxes all
carry one (capitalised) label → `task new` → `pipeline run --task FILE` (ingest → validate →
detection export → Faster R-CNN → gate → promote) → the champion answers `/detect`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from components.common.params import section
from components.common.settings import build_settings
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from lesionops.champion import champion_summary
from lesionops.serve.app import create_app
from lesionops.serve.config import ServeConfig
from lesionops.synth.skin import SynthConfig, generate_skin_dataset
from tests.conftest import tiny_params
from tests.serve.fixtures import CLINICIAN, add_test_users, image_bytes

pytestmark = pytest.mark.slow

TINY_DETECTOR = [
    "train_detector.epochs=1",
    "train_detector.batch_size=4",
    "train_detector.min_size=96",
    "train_detector.max_size=128",
    "train_detector.threads=1",
    "evaluate_detector.gate.min_map50=0.0",
    "evaluate_detector.gate.min_test_images=3",
]


def _lesionops(args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "lesionops", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"lesionops {args} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_one_label_folder_trains_gates_promotes_and_serves_detect(tmp_path: Path) -> None:
    data = tmp_path / "Plaques"
    generate_skin_dataset(
        SynthConfig(
            out_dir=data,
            n_images=48,
            seed=5,
            image_width=128,
            image_height=96,
            classes=("psoriasis",),
            class_priors=(1.0,),
            images_per_patient_min=1,
            images_per_patient_max=2,
        ),
        progress=False,
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tmp_path)), encoding="utf-8")
    _lesionops(["task", "new", "--from", str(data), "--out", "plaques.yaml", "--name", "plaques"], tmp_path)
    task_file = yaml.safe_load((tmp_path / "plaques.yaml").read_text())
    assert task_file["task"]["models"] == ["detector"] and task_file["task"]["classes"] == ["psoriasis"]
    # the user renames the class for display; the typed `psoriasis` still matches by key
    task_file["task"]["classes"] = ["Psoriasis"]
    (tmp_path / "plaques.yaml").write_text(yaml.safe_dump(task_file), encoding="utf-8")

    sets = [arg for s in TINY_DETECTOR for arg in ("--set", s)]
    out = _lesionops(["pipeline", "run", "--task", "plaques.yaml", "--pipeline-root", "kfp", *sets], tmp_path)
    assert "promote_model" in out or "detector" in out
    doc = build_settings(tmp_path / "params.yaml", str(tmp_path / "plaques.yaml"), TINY_DETECTOR)
    tracking = section(doc, "mlflow", TrackingConfig)
    champion = champion_summary(
        tracking.__class__(**{**tracking.__dict__, "registered_model": tracking.registered_detector})
    )
    assert champion is not None and champion["name"] == "plaques_detector" and champion["version"] == "1"
    assert "train-model" not in {p.name for p in (tmp_path / "kfp").glob("*/*")}  # no classifier branch
    [decision] = list((tmp_path / "kfp").rglob("evaluate-detector/**/decision.json"))
    assert json.loads(decision.read_text())["passed"]
    [coco] = list((tmp_path / "kfp").rglob("annotations_train.json"))
    assert [c["name"] for c in json.loads(coco.read_text())["categories"]] == ["Psoriasis"]

    task = load_task(doc)
    serve = ServeConfig(
        store_url=f"sqlite:///{tmp_path / 'serving.db'}",
        image_dir=str(tmp_path / "images"),
        feedback_dir=str(tmp_path / "feedback"),
        reload_every_s=0.0,
        detect_score_threshold=0.0,
    )
    add_test_users(serve.store_url)  # storing routes need a signed-in user (a clinician may detect)
    app = create_app(serve, tracking, task, crop=section(doc, "crop_patches", CropConfig))
    with TestClient(app, headers={"Authorization": f"Bearer {CLINICIAN}"}) as client:
        health = client.get("/health").json()
        assert health["detector"]["name"] == "plaques_detector" and health["classifier"] is None
        done = client.post("/detect", files={"file": ("p.jpg", image_bytes(128, 96), "image/jpeg")})
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["model"] == {"name": "plaques_detector", "version": "1"}
        assert all(d["label"] == "Psoriasis" for d in body["detections"])
        assert (
            client.post("/classify", files={"file": ("p.jpg", image_bytes(128, 96), "image/jpeg")}).status_code == 503
        )
