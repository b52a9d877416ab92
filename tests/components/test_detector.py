"""train_detector + evaluate_detector on a tiny generated COCO export, against a real SQLite MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
import torchvision
from mlflow.tracking import MlflowClient
from PIL import Image, ImageDraw

from components.common.detector import load_split, predict, sample
from components.common.errors import ConfigError, DataError
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.evaluate_detector import __main__ as evaluate_cli
from components.evaluate_detector.gate import DetectorGateConfig, decide
from components.train_detector import __main__ as train_cli
from components.train_detector.core import (
    DetectorConfig,
    build_detector,
    load_pretrained,
    run,
)
from tests.conftest import TINY_CLASSES, deep_merge, tiny_params

COLOURS = ((200, 40, 40), (40, 40, 200))
SPLITS = {"train": 6, "val": 3, "test": 3}  # 12 photos; train image 0 is a negative (no box)


def write_export(patch_dir: Path, seed: int = 0) -> Path:
    """A detection export exactly as crop_patches writes it: COCO per split + images/<file_name>."""
    rng = np.random.default_rng(seed)
    det, n = patch_dir / "detection", 0
    for split, count in SPLITS.items():
        doc: dict[str, Any] = {
            "info": {"description": "LesionOps detection export", "images_root": "images"},
            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(TINY_CLASSES)],
            "images": [],
            "annotations": [],
        }
        for image_id in range(1, count + 1):
            n += 1
            name = f"P{n}/photo{n}.jpg"
            img = Image.new("RGB", (160, 120), (215, 185, 165))
            doc["images"].append(
                {
                    "id": image_id,
                    "file_name": name,
                    "width": 160,
                    "height": 120,
                    "sha256": f"sha{n}",
                    "patient_id": f"P{n}",
                }
            )
            for box_index in range(0 if (split, image_id) == ("train", 1) else 1 + n % 2):
                cls, x, y = int(rng.integers(0, 2)), int(rng.integers(0, 100)), int(rng.integers(0, 70))
                w, h = min(int(rng.integers(20, 50)), 160 - x), min(int(rng.integers(20, 45)), 120 - y)
                ImageDraw.Draw(img).rectangle([x, y, x + w - 1, y + h - 1], fill=COLOURS[cls])
                doc["annotations"].append(
                    {
                        "id": len(doc["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": cls + 1,
                        "bbox": [float(x), float(y), float(w), float(h)],
                        "area": float(w * h),
                        "iscrowd": 0,
                        "box_index": box_index,
                    }
                )
            (det / "images" / name).parent.mkdir(parents=True, exist_ok=True)
            img.save(det / "images" / name, quality=92)
        (det / f"annotations_{split}.json").write_text(json.dumps(doc))
    return patch_dir


def detector_params(tmp: Path, **overrides: Any) -> dict[str, Any]:
    small = {
        "task": {"models": ["classifier", "detector"]},
        "train_detector": {
            "arch": "fasterrcnn_mobilenet_v3_large_fpn",
            "epochs": 1,
            "batch_size": 4,
            "min_size": 96,
            "max_size": 160,
            "threads": 1,
            "device": "cpu",
        },
        "evaluate_detector": {"gate": {"min_map50": 0.0, "min_test_images": 3}},
    }
    return tiny_params(tmp, **deep_merge(small, overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real 1-epoch CPU training through the command line, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("detector")
    patches, out = write_export(tmp / "patches"), tmp / "train"
    doc = detector_params(tmp)
    train_cli.main(
        ["--patches", str(patches), "--out", str(out), "--data-version", "abc123", "--params-json", json.dumps(doc)]
    )
    summary = json.loads((out / "train_summary.json").read_text())
    return {"tmp": tmp, "patches": patches, "out": out, "doc": doc, "summary": summary}


def test_training_writes_summary_and_checkpoint(trained: dict[str, Any]) -> None:
    summary = trained["summary"]
    assert summary["kind"] == "detector" and summary["registered_model"] == "es_skin_detector"
    assert summary["arch"] == "fasterrcnn_mobilenet_v3_large_fpn" and summary["classes"] == list(TINY_CLASSES)
    assert (summary["best_epoch"], summary["epochs_run"], summary["data_version"]) == (0, 1, "abc123")
    assert 0.0 <= summary["best_val_map50"] <= 1.0
    ckpt = torch.load(trained["out"] / "detector.pt", map_location="cpu", weights_only=False)
    assert set(ckpt) == {"state_dict", "optimizer", "epoch", "config", "classes"}
    assert ckpt["config"]["min_size"] == 96 and ckpt["classes"] == list(TINY_CLASSES)


def test_mlflow_run_holds_params_metrics_tags_and_artifacts(trained: dict[str, Any]) -> None:
    mlflow.set_tracking_uri(trained["doc"]["mlflow"]["tracking_uri"])
    client = MlflowClient()
    run_ = client.get_run(trained["summary"]["run_id"])
    assert run_.info.run_name == "train-detector-fasterrcnn_mobilenet_v3_large_fpn"
    assert client.get_experiment(run_.info.experiment_id).name == "lesionops-es_skin"
    assert run_.data.params["min_size"] == "96" and run_.data.params["n_train_images"] == "6"
    assert {k: run_.data.tags[k] for k in ("data_version", "stage", "kind")} == {
        "data_version": "abc123",
        "stage": "train_detector",
        "kind": "detector",
    }
    assert run_.data.tags["git_commit"]
    for metric in ("train_loss", "val_map50"):
        assert [m.step for m in client.get_metric_history(run_.info.run_id, metric)] == [0]
    names = {a.path for a in client.list_artifacts(run_.info.run_id)}
    assert {"classes.json", "preprocessing.json"} <= names


def test_logged_model_loads_back_and_predicts_like_the_checkpoint(trained: dict[str, Any]) -> None:
    mlflow.set_tracking_uri(trained["doc"]["mlflow"]["tracking_uri"])
    logged = mlflow.pytorch.load_model(trained["summary"]["model_uri"], map_location="cpu").eval()
    ckpt = torch.load(trained["out"] / "detector.pt", map_location="cpu", weights_only=False)
    rebuilt = build_detector(DetectorConfig(**ckpt["config"]), len(TINY_CLASSES))
    rebuilt.load_state_dict(ckpt["state_dict"])
    test = load_split(trained["patches"], "test", TINY_CLASSES)
    a, b = (predict(m.eval(), test, torch.device("cpu")) for m in (logged, rebuilt))
    assert len(a) == len(test.items)
    for (boxes_a, scores_a, labels_a), (boxes_b, scores_b, labels_b) in zip(a, b, strict=True):
        assert boxes_a.shape[1:] == (4,) and np.array_equal(labels_a, labels_b)
        np.testing.assert_allclose(boxes_a, boxes_b, atol=1e-4)
        np.testing.assert_allclose(scores_a, scores_b, atol=1e-5)


def evaluate(trained: dict[str, Any], out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    evaluate_cli.main(
        [
            "--patches",
            str(trained["patches"]),
            "--model",
            str(trained["out"]),
            "--out",
            str(out),
            "--params-json",
            json.dumps(trained["doc"]),
        ]
    )
    return json.loads((out / "metrics.json").read_text()), json.loads((out / "decision.json").read_text())


def test_evaluation_without_then_with_a_champion(trained: dict[str, Any]) -> None:
    metrics, decision = evaluate(trained, trained["tmp"] / "eval1")
    assert decision["passed"] and decision["champion_version"] is None
    rule = next(r for r in decision["rules"] if r["name"] == "non_inferior_to_champion")
    assert rule["passed"] and "no champion yet" in rule["reason"]
    assert metrics["champion"] is None and metrics["n_test_images"] == 3
    assert set(metrics["per_class_ap50"]) == set(TINY_CLASSES)
    assert 0.0 <= metrics["test_map50_95"] <= metrics["test_map50"] <= 1.0
    assert (trained["tmp"] / "eval1" / "predictions.png").stat().st_size > 0

    name = trained["summary"]["registered_model"]
    mlflow.set_tracking_uri(trained["doc"]["mlflow"]["tracking_uri"])
    version = mlflow.register_model(trained["summary"]["model_uri"], name)
    MlflowClient().set_registered_model_alias(name, "champion", version.version)

    metrics2, decision2 = evaluate(trained, trained["tmp"] / "eval2")
    assert decision2["passed"] and decision2["champion_version"] == str(version.version)
    champion = metrics2["champion"]
    for key in ("test_map50", "test_map50_95", "n_test_images"):
        assert champion[key] == pytest.approx(metrics2[key], abs=1e-6)  # the same model, the same split
    run_ = MlflowClient().get_run(trained["summary"]["run_id"])
    assert run_.data.tags["gate_passed"] == "true" and "test_map50" in run_.data.metrics
    logged = {a.path for a in MlflowClient().list_artifacts(run_.info.run_id, "evaluation")}
    assert logged == {f"evaluation/{n}" for n in ("decision.json", "metrics.json", "predictions.png")}


def test_a_task_without_a_detector_records_why_instead_of_training(tmp_path: Path) -> None:
    """dvc repro runs every stage: train_detector on a classifier-only task says why it did nothing
    (common/skip.py) and writes no model, instead of failing the graph."""
    doc = detector_params(tmp_path, task={"models": ["classifier"]})
    summary = run(
        section(doc, "train_detector", DetectorConfig),
        load_task(doc),
        section(doc, "mlflow", TrackingConfig),
        tmp_path,
        tmp_path / "out",
    )
    assert "task.models" in summary["skipped"] and "no detector to train" in summary["skipped"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train_summary.json"]


def test_split_loading_negatives_flips_and_errors(tmp_path: Path) -> None:
    patches = write_export(tmp_path / "p")
    train = load_split(patches, "train", TINY_CLASSES)
    assert train.items[0].boxes.shape == (0, 4) and train.items[0].labels.shape == (0,)
    item = next(i for i in train.items if len(i.labels))
    image, target = sample(item, flip=True)
    assert image.shape == (3, 120, 160) and target["labels"].tolist() == item.labels.tolist()
    x0, y0, x1, y1 = item.boxes[0]
    assert target["boxes"][0].tolist() == pytest.approx([160 - x1, y0, 160 - x0, y1])
    assert sample(train.items[0], flip=False)[1]["boxes"].shape == (0, 4)

    ann = patches / "detection" / "annotations_val.json"
    doc = json.loads(ann.read_text())
    doc["info"]["images_root"] = str((patches / "detection" / "images").resolve())  # absolute root works
    ann.write_text(json.dumps(doc))
    assert len(load_split(patches, "val", TINY_CLASSES).items) == 3
    with pytest.raises(DataError, match="categories"):
        load_split(patches, "val", tuple(reversed(TINY_CLASSES)))
    doc["images"][0]["width"] = 200
    ann.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="decoded size"):
        sample(load_split(patches, "val", TINY_CLASSES).items[0], flip=False)


@pytest.mark.parametrize(
    ("arch", "builder"),
    [
        ("fasterrcnn_mobilenet_v3_large_fpn", torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn),
        ("fasterrcnn_resnet50_fpn", torchvision.models.detection.fasterrcnn_resnet50_fpn),
    ],
)
def test_detector_matches_torchvision_builder(arch: str, builder: Any) -> None:
    ours = build_detector(DetectorConfig(arch=arch), 2).state_dict()
    theirs = builder(weights=None, weights_backbone=None, num_classes=3).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.fixture()
def s3_endpoint(s3_client: Any) -> Any:
    """The shared moto server (tests/conftest.py), found through the standard AWS variables."""
    return s3_client


def stage_weights(where: str, tmp_path: Path, state: dict[str, torch.Tensor]) -> str:
    torch.save(state, tmp_path / "mnv3.pt")
    if where == "local":
        return str(tmp_path / "mnv3.pt")
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="weights")
    client.upload_file(str(tmp_path / "mnv3.pt"), "weights", "imagenet/mnv3.pt")
    return "s3://weights/imagenet/mnv3.pt"


@pytest.mark.parametrize("where", ["local", "s3"])
def test_pretrained_weights_load_and_freeze(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if where == "s3":
        request.getfixturevalue("s3_endpoint")
    backbone = torchvision.models.mobilenet_v3_large(weights=None)  # a classification checkpoint
    cfg = DetectorConfig(
        pretrained_path=stage_weights(where, tmp_path, backbone.state_dict()), trainable_backbone_layers=2
    )
    model = build_detector(cfg, 2)
    counts = load_pretrained(model, str(cfg.pretrained_path))
    assert counts["pretrained_loaded"] > 100
    assert torch.equal(model.backbone.body["0"][0].weight, backbone.features[0][0].weight)
    assert not model.backbone.body["0"][0].weight.requires_grad  # frozen: only the last 2 stages train
    assert model.rpn.head.conv[0][0].weight.requires_grad


def test_missing_pretrained_file_names_the_key(tmp_path: Path) -> None:
    cfg = DetectorConfig(pretrained_path=str(tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match="train_detector.pretrained_path"):
        load_pretrained(build_detector(cfg, 2), str(cfg.pretrained_path))


@pytest.mark.gpu
def test_cuda_bf16_training_runs(tmp_path: Path) -> None:
    patches = write_export(tmp_path / "p")
    doc = detector_params(tmp_path, train_detector={"device": "cuda", "epochs": 2})
    summary = run(
        section(doc, "train_detector", DetectorConfig),
        load_task(doc),
        section(doc, "mlflow", TrackingConfig),
        patches,
        tmp_path / "out",
    )
    assert summary["epochs_run"] == 2 and 0.0 <= summary["best_val_map50"] <= 1.0


def gate_input(map50: float | None = 0.5, n: int = 20) -> dict[str, Any]:
    return {"map50": map50, "n_images": n, "iou_threshold": 0.5}


GATE = DetectorGateConfig(min_map50=0.3, max_drop_vs_champion=0.02, min_test_images=10)


@pytest.mark.parametrize(
    ("challenger", "champion", "failed"),
    [
        pytest.param(gate_input(), None, [], id="no-champion-passes"),
        pytest.param(gate_input(0.2), None, ["min_map50"], id="floor"),
        pytest.param(gate_input(None), None, ["min_map50"], id="no-test-boxes"),
        pytest.param(gate_input(n=5), None, ["min_test_images"], id="too-few-test-images"),
        pytest.param(gate_input(0.5), gate_input(0.51), [], id="within-margin"),
        pytest.param(gate_input(0.5), gate_input(0.53), ["non_inferior_to_champion"], id="worse-than-champion"),
    ],
)
def test_gate_branches(challenger: dict, champion: dict | None, failed: list[str]) -> None:
    decision = decide(challenger, champion, GATE).as_dict()
    assert decision["failed"] == failed and decision["passed"] is (not failed)
    assert [r["name"] for r in decision["rules"]] == ["min_test_images", "min_map50", "non_inferior_to_champion"]
    if champion is None:
        assert "no champion yet" in decision["rules"][-1]["reason"]


@pytest.mark.parametrize(
    "arch, sizes",
    [("fasterrcnn_mobilenet_v3_large_fpn", (8, 16, 32)), ("fasterrcnn_resnet50_fpn", (8, 16, 32, 64, 128))],
)
def test_anchor_sizes_and_ratios_reach_the_rpn(arch: str, sizes: tuple[int, ...]) -> None:
    """Acupoints are 8–20 px: the smallest default anchor (32 px) barely overlaps them, so the sizes
    must be a setting that really changes the RPN (anchors per location follow the ratios)."""
    model = build_detector(DetectorConfig(arch=arch, anchor_sizes=list(sizes), aspect_ratios=[1.0]), 2)
    gen = model.rpn.anchor_generator
    flat = sorted({s for level in gen.sizes for s in level})
    assert flat == list(sizes)
    assert all(r == (1.0,) for r in gen.aspect_ratios)
    per_location = gen.num_anchors_per_location()[0]
    assert model.rpn.head.cls_logits.out_channels == per_location == (len(sizes) if "mobilenet" in arch else 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"anchor_sizes": [16, 8]}, "increasing"),
        ({"anchor_sizes": [0, 8]}, "increasing"),
        ({"arch": "fasterrcnn_resnet50_fpn", "anchor_sizes": [8, 16, 32]}, "5 FPN levels"),
        ({"aspect_ratios": [0.0, 1.0]}, "aspect_ratios"),
    ],
)
def test_bad_anchor_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DetectorConfig(**kwargs)
