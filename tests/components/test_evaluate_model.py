"""evaluate_model end to end on real stages: CIs, calibration, baseline, leak check, champion."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from components.common.baseline import BaselineConfig, make_pipeline
from components.common.errors import DataError
from components.common.io import write_json
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig, setup
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run as crop
from components.evaluate_model.__main__ import main as evaluate_cli
from components.evaluate_model.baseline import read_baseline
from components.evaluate_model.core import EvaluateConfig, leak_patients
from components.evaluate_model.core import run as evaluate
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.train_baseline.core import log_model as log_baseline
from components.train_baseline.core import run as train_baseline
from components.train_model.config import TrainConfig
from components.train_model.core import run as train
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.conftest import tiny_params

RULES = {
    "min_test_samples",
    "min_accuracy",
    "min_macro_f1",
    "beats_baseline",
    "non_inferior_to_champion",
    "validation_passed",
    "no_patient_leak",
}

# tone from crop_patches, body site from the synthetic metadata.csv; no stage records a camera
GROUP_RULES = {"group_recall[skin_tone]", "group_recall[body_site]"}


def check_subgroups(out: Path, metrics: dict, classes: tuple[str, ...]) -> None:
    """Every test patch in exactly one group per grouping, each group with its size and CIs."""
    table = json.loads((out / "subgroups.json").read_text())
    assert set(table["groupings"]) == {"skin_tone", "body_site"} and table["not_known"] == ["camera"]
    for rows in table["groupings"].values():
        assert sum(r["n"] for r in rows) == metrics["n_test"]
        assert sum(r["n_patients"] for r in rows) >= metrics["n_test_patients"]  # a patient may span sites
        for r in rows:
            lo, hi = r["ci"]["accuracy"]
            assert 0.0 <= lo <= r["accuracy"] <= hi <= 1.0 and set(r["per_class"]) == set(classes)
    assert "worst_group_recall_skin_tone" in metrics


def check_block(block: dict, classes: tuple[str, ...]) -> None:
    for metric in ("accuracy", "macro_f1", "macro_recall"):
        lo, hi = block["ci"][metric]
        assert 0.0 <= lo <= block[f"test_{metric}"] <= hi <= 1.0
    assert 0.0 <= block["test_ece"] <= 1.0 and 0.0 <= block["test_ece_calibrated"] <= 1.0
    assert 0.0 < block["test_ece_noise_floor"] < 1.0  # a small test split: never a floor of zero
    assert block["temperature"] > 0
    assert block["test_roc_auc_macro"] is None or 0.0 <= block["test_roc_auc_macro"] <= 1.0
    assert set(block["per_class"]) == set(classes)
    assert all({"precision", "recall", "roc_auc"} <= set(m) for m in block["per_class"].values())
    assert {f"test_recall_{c}" for c in classes} <= set(block)


def check_plot_data_and_kfp_outputs(out: Path, metrics: dict, classes: tuple[str, ...]) -> None:
    """The CSVs behind dvc.yaml's plots agree with metrics.json, and the component's readers turn
    them into real kfp Metrics / ClassificationMetrics artifacts."""
    from kfp import dsl

    from components.common.kfp_outputs import log_classification, log_metrics

    confusion = pd.read_csv(out / "confusion.csv")
    assert len(confusion) == metrics["n_test"] and set(confusion.actual) <= set(classes)
    counts = pd.crosstab(confusion.actual, confusion.predicted).reindex(index=classes, columns=classes, fill_value=0)
    assert counts.to_numpy().tolist() == metrics["confusion_matrix"]
    roc = pd.read_csv(out / "roc.csv")
    assert roc.fpr.is_monotonic_increasing and roc.tpr.iloc[-1] == pytest.approx(1.0) and roc.threshold.max() <= 1.0
    reliability = pd.read_csv(out / "reliability.csv")
    assert reliability.count_raw.sum() == reliability.count_calibrated.sum() == metrics["n_test"]

    kfp_metrics = dsl.Metrics(uri=str(out.parent / "kfp" / "metrics"))
    assert log_metrics(kfp_metrics, out / "metrics.json")["test_macro_f1"] == metrics["test_macro_f1"]
    assert kfp_metrics.metadata["test_accuracy"] == metrics["test_accuracy"] and "champion" not in kfp_metrics.metadata
    kfp_cls = dsl.ClassificationMetrics(uri=str(out.parent / "kfp" / "classification"))
    assert log_classification(kfp_cls, out)
    matrix = kfp_cls.metadata["confusionMatrix"]
    assert [a["displayName"] for a in matrix["annotationSpecs"]] == list(classes)
    assert [r["row"] for r in matrix["rows"]] == metrics["confusion_matrix"]
    assert len(kfp_cls.metadata["confidenceMetrics"]) == len(roc)


@pytest.mark.slow
def test_evaluate_with_baseline_then_against_itself_as_champion(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tiny_params(
        tmp_path,
        train_model={"epochs": 2},
        crop_patches={"balance": {"target_per_class": 40}, "detection": {"enabled": False}},
    )
    task, tracking = load_task(doc), section(doc, "mlflow", TrackingConfig)
    cfg = section(doc, "evaluate_model", EvaluateConfig)
    ingest(section(doc, "ingest_data", IngestConfig), tiny_dataset, tmp_path / "ingest")
    validate(section(doc, "validate_annotations", ValidateConfig), task, tmp_path / "ingest", tmp_path / "val")
    crop(section(doc, "crop_patches", CropConfig), task, tmp_path / "val", tiny_dataset, tmp_path / "crop")
    summary = train(section(doc, "train_model", TrainConfig), task, tracking, tmp_path / "crop", tmp_path / "train")
    trained = train_baseline(
        section(doc, "train_baseline", BaselineConfig), task, tracking, tmp_path / "crop", tmp_path / "baseline"
    )
    baseline = trained["test"]

    with pytest.raises(DataError, match="baseline_metrics.json"):
        evaluate(
            cfg,
            task,
            tracking,
            tmp_path / "crop",
            tmp_path / "train",
            tmp_path / "x",
            baseline_dir=tmp_path / "nowhere",
        )

    # First model: through the command line, as dvc and kfp run it.
    evaluate_cli(
        [
            "--patches",
            str(tmp_path / "crop"),
            "--model",
            str(tmp_path / "train"),
            "--out",
            str(tmp_path / "eval1"),
            "--baseline",
            str(tmp_path / "baseline"),
            "--validation",
            str(tmp_path / "val"),
            "--params-json",
            json.dumps(doc),
        ]
    )
    assert "evaluate_model: gate" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval1" / "metrics.json").read_text())
    decision = json.loads((tmp_path / "eval1" / "decision.json").read_text())
    check_block(metrics, task.classes)
    assert metrics["n_test"] == baseline["n"] and metrics["champion"] is None and metrics["diff_ci"] is None
    assert metrics["gain_vs_baseline"] == pytest.approx(metrics["test_macro_f1"] - baseline["macro_f1"])
    # scored here from its MLflow model: the number train_baseline reported, recomputed
    assert metrics["baseline_macro_f1"] == baseline["macro_f1"]
    assert metrics["baseline_model_uri"] == trained["model_uri"]
    assert metrics["leak_patients"] == [] and metrics["validation_passed"] is True
    rules = {r["name"]: r for r in decision["rules"]}
    assert RULES | {f"recall[{c}]" for c in task.classes} | GROUP_RULES == set(rules)
    assert rules["beats_baseline"]["value"] == pytest.approx(metrics["gain_vs_baseline"])
    assert rules["non_inferior_to_champion"]["reason"] == "no champion yet: first model"
    assert rules["validation_passed"]["passed"] and rules["no_patient_leak"]["passed"]
    assert decision["passed"] == all(r["passed"] for r in decision["rules"])
    assert decision["run_id"] == summary["run_id"] and decision["champion_version"] is None
    assert all(
        (tmp_path / "eval1" / name).stat().st_size > 0
        for name in ("confusion_matrix.png", "reliability.png", "roc.png")
    )
    check_plot_data_and_kfp_outputs(tmp_path / "eval1", metrics, task.classes)
    check_subgroups(tmp_path / "eval1", metrics, task.classes)
    client = mlflow.MlflowClient(tracking.tracking_uri)
    logged = client.get_run(summary["run_id"]).data.metrics
    assert logged["test_ece"] == pytest.approx(metrics["test_ece"]) and "test_macro_f1_ci_low" in logged
    assert {f.path for f in client.list_artifacts(summary["run_id"], "evaluation")} >= {
        "evaluation/reliability.png",
        "evaluation/roc.png",
        "evaluation/metrics.json",
        "evaluation/subgroups.json",
    }

    # The same model as champion (the registry's pt2 export): identical scores, difference CI at 0.
    version = mlflow.register_model(summary["model_uri"], tracking.registered_model).version
    client.set_registered_model_alias(tracking.registered_model, cfg.champion_alias, version)
    report = evaluate(
        cfg,
        task,
        tracking,
        tmp_path / "crop",
        tmp_path / "train",
        tmp_path / "eval2",
        baseline_dir=tmp_path / "baseline",
        validation_dir=tmp_path / "val",
    )
    again = json.loads((tmp_path / "eval2" / "metrics.json").read_text())
    champion = again["champion"]
    check_block(champion, task.classes)
    assert report["champion_version"] == again["champion_version"] == str(version)
    for key in ("test_accuracy", "test_macro_f1", "test_macro_recall", "n_test"):
        assert champion[key] == pytest.approx(again[key])
    assert champion["test_ece"] == pytest.approx(again["test_ece"], abs=1e-4)
    assert champion["temperature"] == pytest.approx(again["temperature"], rel=1e-3)
    lo, hi = again["diff_ci"]
    assert lo <= 0.0 <= hi and again["diff_macro_f1"] == pytest.approx(0.0)
    rule = next(r for r in report["rules"] if r["name"] == "non_inferior_to_champion")
    assert rule["passed"] and "paired patient-bootstrap CI" in rule["reason"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("p1", "train"), ("p2", "val"), ("p3", "test")], []),
        ([("p1", "train"), ("p2", "val"), ("p3", "test"), ("p1", "test"), ("p2", "test")], ["p1", "p2"]),
        ([("p3", "test"), ("p3", "test")], []),
    ],
)
def test_leak_check_reads_the_patch_table(tmp_path: Path, rows: list[tuple[str, str]], expected: list[str]) -> None:
    pd.DataFrame(rows, columns=["patient_id", "split"]).to_parquet(tmp_path / "patches.parquet")
    assert leak_patients(tmp_path) == expected


def test_a_baseline_that_cannot_be_scored_is_named(tmp_path: Path) -> None:
    """Output of an older train_baseline (no model URI), a URI the store does not hold, and a model
    of other classes: each a DataError naming baseline_metrics.json and the problem."""
    doc = tiny_params(tmp_path)
    tracking, classes = section(doc, "mlflow", TrackingConfig), tuple(doc["task"]["classes"])
    metrics = tmp_path / "baseline" / "baseline_metrics.json"
    write_json(metrics, {"test": {"macro_f1": 0.5, "n": 10}})
    with pytest.raises(DataError, match=r"baseline_metrics.json: no 'model_uri'.*rerun train_baseline"):
        read_baseline(metrics.parent, tracking, tmp_path / "crop", classes)

    write_json(metrics, {"model_uri": "models:/m-0123456789abcdef0123456789abcdef"})
    with pytest.raises(DataError, match=r"baseline_metrics.json → models:/m-0123.*cannot be loaded"):
        read_baseline(metrics.parent, tracking, tmp_path / "crop", classes)

    setup(tracking)
    x, y = np.random.default_rng(0).random((12, 8), dtype=np.float32), np.arange(12) % 3
    with mlflow.start_run():
        other = ("a", "b", "c")
        uri = log_baseline(make_pipeline(BaselineConfig(), 0.1).fit(x, y), x, BaselineConfig(), other)
    write_json(metrics, {"model_uri": uri})
    with pytest.raises(DataError, match=r"predicts classes \['a', 'b', 'c'\], the task has"):
        read_baseline(metrics.parent, tracking, tmp_path / "crop", classes)
