"""The whole loop on tiny data: serve → results reported wrong → expert review → feedback threshold
reached → `monitor_cycle` merges the feedback and retrains through kfp.local → the app serves the
new champion, and `lesionops audit` follows one reported photo from its reporter and reviewer to the
model version trained on it. Real components throughout: MLflow on SQLite, the FastAPI app, the
serving store, DVC in a throw-away git repo, kfp.local subprocesses."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from components.common.baseline import BaselineConfig
from components.common.formats import read_voc_file
from components.common.params import section
from components.common.store import Store
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run as crop
from components.evaluate_model.core import EvaluateConfig
from components.evaluate_model.core import run as evaluate
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.promote_model.config import PromoteConfig
from components.promote_model.core import run as promote
from components.train_baseline.core import run as train_baseline
from components.train_model.config import TrainConfig
from components.train_model.core import run as train
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from lesionops.audit_trail import Trail
from lesionops.retrain import monitor_cycle
from lesionops.serve.app import create_app
from lesionops.serve.config import ServeConfig
from tests.conftest import deep_merge, tiny_params
from tests.serve.fixtures import ADMIN, CLINICIAN, REVIEWER, add_test_users

pytestmark = pytest.mark.slow
N_REPORTS = 4


def _params(root: Path) -> dict[str, Any]:
    """Tiny params; the gate opened so the retrained model is promoted (the gate's own branches are
    tested elsewhere: this test is about the loop)."""
    return deep_merge(
        tiny_params(root),
        {
            "task": {"models": ["classifier"]},
            "evaluate_model": {"gate": {"max_drop_vs_champion": 1.0, "min_test_samples": 1}},
            "monitor_drift": {"retrain_feedback_threshold": N_REPORTS},
            "serve": {
                "store_url": f"sqlite:///{root / 'serving' / 'lesionops.db'}",
                "image_dir": str(root / "serving" / "images"),
                "feedback_dir": str(root / "feedback"),
                "reload_every_s": 0.0,
                "champion_alias": "champion",
                "retention_days": 30,
            },
            "retrain": {
                "data": str(root / "data"),
                "pipeline_root": str(root / ".kfp_local"),
                "monitor_dir": str(root / "outputs" / "monitor"),
            },
        },
    )


def _first_champion(doc: dict[str, Any], root: Path) -> None:
    """The stage functions in-process (fast); the retrain below goes through kfp.local."""
    task, tracking, out = load_task(doc), section(doc, "mlflow", TrackingConfig), root / "first"
    ingest(section(doc, "ingest_data", IngestConfig), root / "data", out / "ingest")
    validate(section(doc, "validate_annotations", ValidateConfig), task, out / "ingest", out / "validate", tracking)
    crop(section(doc, "crop_patches", CropConfig), task, out / "validate", root / "data", out / "crop")
    train_baseline(section(doc, "train_baseline", BaselineConfig), task, tracking, out / "crop", out / "baseline")
    train(section(doc, "train_model", TrainConfig), task, tracking, out / "crop", out / "train")
    evaluate(
        section(doc, "evaluate_model", EvaluateConfig),
        task,
        tracking,
        out / "crop",
        out / "train",
        out / "evaluate",
        baseline_dir=out / "baseline",
        validation_dir=out / "validate",
    )
    done = promote(
        section(doc, "promote_model", PromoteConfig), tracking, out / "train", out / "evaluate", out / "promote"
    )
    assert done["version"] == "1"


def _report_wrong(client: TestClient, data: Path, classes: tuple[str, ...]) -> list[str]:
    """Classify N lesions with their labelImg box; report each as wrong, suggesting the other class."""
    ids = []
    for xml in sorted(data.glob("**/*.xml"))[:N_REPORTS]:
        box = read_voc_file(xml).boxes[0]
        image = xml.with_suffix(".jpg")
        with image.open("rb") as fh:
            res = client.post(
                "/classify",
                files={"file": (image.name, fh, "image/jpeg")},
                data={"box": f"{box.xmin - 1:.0f},{box.ymin - 1:.0f},{box.xmax:.0f},{box.ymax:.0f}"},
                headers={"Authorization": f"Bearer {CLINICIAN}"},
            )
        assert res.status_code == 200, res.text
        said = res.json()["top"][0]["label"]
        other = next(c for c in classes if c != said)
        fb = client.post(
            "/feedback",
            data={
                "prediction_id": res.json()["prediction_id"],
                "suggested_label": other,
                "note": "looks like the other one",
            },
            headers={"Authorization": f"Bearer {CLINICIAN}"},
        )
        assert fb.status_code == 201, fb.text
        ids.append(fb.json()["feedback_id"])
    return ids


def _review_all(client: TestClient, ids: list[str]) -> None:
    auth = {"Authorization": f"Bearer {REVIEWER}"}
    queue = client.get("/review/queue", headers=auth).json()["items"]
    assert {item["feedback_id"] for item in queue} == set(ids)
    for item in queue:
        res = client.post(
            f"/review/items/{item['feedback_id']}",
            headers=auth,
            json={"action": "accept", "true_label": item["suggested_label"], "reviewer": "dr test"},
        )
        assert res.status_code == 200 and res.json()["status"] == "accepted", res.text


def test_reported_reviewed_retrained_and_served(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "clinic"
    root.mkdir()
    shutil.copytree(tiny_dataset, root / "data")
    monkeypatch.chdir(root)  # DVC versions data/ and feedback/ in this throw-away repo
    subprocess.run(["git", "init", "-q"], check=True)
    doc = _params(root)
    task, tracking = load_task(doc), section(doc, "mlflow", TrackingConfig)
    _first_champion(doc, root)

    serve = section(doc, "serve", ServeConfig)
    add_test_users(serve.store_url)
    app = create_app(serve, tracking, task, crop=section(doc, "crop_patches", CropConfig))
    with TestClient(app) as client:
        assert client.get("/health").json()["classifier"]["version"] == "1"
        ids = _report_wrong(client, root / "data", task.classes)
        _review_all(client, ids)
        assert len(list((root / "feedback").rglob("*.xml"))) >= 1

        result = monitor_cycle(doc)
        assert result["decision"]["retrain"], result["decision"]["reasons"]
        assert any("feedback" in r for r in result["decision"]["reasons"])
        launched = result["retrain"]
        assert launched["merged"] >= 1 and launched["target"] == "local"
        assert (root / "data" / "feedback").is_dir() and (root / "feedback.dvc").is_file()
        assert launched["data_version"] not in ("untracked", "unknown")
        assert result["retention"]["deleted"] == 0  # every photo is recent (and reported)

        health = client.post("/reload", headers={"Authorization": f"Bearer {ADMIN}"}).json()
        assert health["classifier"]["version"] == "2", health  # the retrained champion is served
        res = client.post(
            "/classify",
            files={"file": ("x.jpg", next((root / "data").glob("**/*.jpg")).read_bytes(), "image/jpeg")},
            headers={"Authorization": f"Bearer {CLINICIAN}"},
        )
        assert res.json()["model"]["version"] == "2"

    # The chain from one report to the model trained on it, with who did each step.
    store = Store(serve.store_url)
    sha = store.get_feedback(ids[0])["input_sha256"]
    steps = [
        (s.who, s.what)
        for s in Trail(store, tracking, section(doc, "promote_model", PromoteConfig).audit_log).image(sha)
    ]
    clinician, reviewer = f"dr-clinician ({CLINICIAN.split('.')[0]})", f"dr-test ({REVIEWER.split('.')[0]})"
    assert (clinician, f"report {ids[0]}") in steps and (reviewer, "review: accepted") in steps
    assert ("system:retrain", "merged into training data") in steps
    assert any(what == f"trained {tracking.registered_model} v2" for _, what in steps)
    assert any(what == "promote @champion" for _, what in steps), steps

    # The decision is on record, and the next window does not retrain again on the same feedback.
    history = json.loads((root / "outputs" / "monitor" / "history.json").read_text())
    assert history[-1]["retrain"] is True
    again = monitor_cycle(doc)
    assert not again["decision"]["retrain"], again["decision"]["reasons"]
    assert dataclasses.asdict(serve)["feedback_dir"] == str(root / "feedback")
