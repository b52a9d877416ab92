"""The crossval stage: the grouped repeated k-fold report on real crop_patches output (2 repeats × 3 folds)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from components.common.baseline import BaselineConfig, extract_features
from components.common.baseline import fit as fit_baseline
from components.common.classifier.config import TrainConfig
from components.common.errors import ConfigError, DataError
from components.common.metrics import classification_metrics
from components.common.params import build, section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run as crop
from components.crossval import __main__ as crossval_cli
from components.crossval.config import CrossvalConfig
from components.crossval.core import REPORT_JSON, REPORT_MD, REPORT_PNG, decode_pool, read_pool, run, skip_reason
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.conftest import TINY_CLASSES, tiny_params

KFOLD = {"enabled": True, "models": ["baseline", "cnn"], "epochs": 2}


@pytest.fixture(scope="module")
def setup_(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    """(params, crop_patches output with folds.parquet, MLflow store dir); train is oversampled."""
    tmp = tmp_path_factory.mktemp("kfold")
    doc = tiny_params(
        tmp,
        crop_patches={"detection": {"enabled": False}, "kfold": {"enabled": True, "folds": 3, "repeats": 2}},
        train_model={"epochs": 5},
        crossval=KFOLD,
    )
    task = load_task(doc)
    ingest(section(doc, "ingest_data", IngestConfig), tiny_dataset, tmp / "ingest")
    validate(section(doc, "validate_annotations", ValidateConfig), task, tmp / "ingest", tmp / "val")
    crop(section(doc, "crop_patches", CropConfig), task, tmp / "val", tiny_dataset, tmp / "crop")
    return doc, tmp / "crop", tmp


def kfold(doc: dict[str, Any], patch_dir: Path, out: Path, **over: Any) -> dict[str, Any]:
    cfg = build(CrossvalConfig, {**doc["crossval"], **over}, "crossval")
    return run(
        cfg,
        load_task(doc),
        section(doc, "mlflow", TrackingConfig),
        patch_dir,
        out,
        section(doc, "train_model", TrainConfig),
        section(doc, "train_baseline", BaselineConfig),
    )


@pytest.fixture(scope="module")
def full(setup_: tuple[dict[str, Any], Path, Path]) -> dict[str, Any]:
    doc, patch_dir, tmp = setup_
    return kfold(doc, patch_dir, tmp / "out")


def numbers(fold: dict[str, Any]) -> dict[str, Any]:
    return {
        m: {k: r[k] for k in ("accuracy", "macro_f1", "per_class_recall", "confusion_matrix")}
        for m, r in fold["results"].items()
    }


@pytest.mark.slow
def test_every_fold_of_both_models_is_reported_without_patient_leak(setup_, full) -> None:
    _, patch_dir, tmp = setup_
    folds = pd.read_parquet(patch_dir / "folds.parquet")
    table = pd.read_parquet(patch_dir / "patches.parquet")
    base = table[table.augment == "none"]
    assert (table.augment != "none").any()  # the fixture really has oversampled copies to leave out
    assert full["pool"]["dropped_augmented_copies"] == int((table.augment != "none").sum())
    assert full["pool"]["n_patches"] == len(base)
    assert [(f["repeat"], f["fold"]) for f in full["folds"]] == [(r, f) for r in range(2) for f in range(3)]
    assert full["n_folds_run"] == full["n_folds_total"] == 6 and full["skipped"] == []
    everyone = set(base.patient_id.astype(str))
    for f in full["folds"]:
        p = {k: set(v) for k, v in f["patients"].items()}
        assert not p["test"] & (p["fit"] | p["val"]) and not p["fit"] & p["val"]
        assert p["fit"] | p["val"] | p["test"] == everyone
        held = folds[(folds.repeat == f["repeat"]) & (folds.fold == f["fold"])].patient_id.astype(str)
        assert p["test"] == set(held) & everyone
        assert f["n_patches"]["test"] == int(base.patient_id.astype(str).isin(p["test"]).sum())
        for m in ("baseline", "cnn"):
            r = f["results"][m]
            assert np.array(r["confusion_matrix"]).sum() == r["n_test"] == f["n_patches"]["test"]
            assert 0.0 <= r["macro_f1"] <= 1.0 and set(r["per_class_recall"]) == set(TINY_CLASSES)
        assert 1 <= f["results"]["cnn"]["epochs_run"] <= 2  # the kfold epochs override, not train_model's 5
    for m in ("baseline", "cnn"):
        s = full["summary"][m]
        f1 = [f["results"][m]["macro_f1"] for f in full["folds"]]
        assert s["macro_f1"]["mean"] == pytest.approx(np.mean(f1))
        assert s["macro_f1"]["sd"] == pytest.approx(np.std(f1, ddof=1))
        assert s["macro_f1"]["min"] == min(f1) and s["macro_f1"]["max"] == max(f1)
        means = [np.mean(f1[:3]), np.mean(f1[3:])]
        assert [s["repeat_means"][r]["macro_f1"] for r in ("0", "1")] == pytest.approx(means)
        assert s["sd_repeat_means"]["macro_f1"] == pytest.approx(np.std(means, ddof=1))
    diff = [f["results"]["cnn"]["macro_f1"] - f["results"]["baseline"]["macro_f1"] for f in full["folds"]]
    assert [d["macro_f1"] for d in full["difference"]["per_fold"]] == pytest.approx(diff)
    for name in (REPORT_JSON, REPORT_MD, REPORT_PNG):
        assert (tmp / "out" / name).stat().st_size > 0
    assert (tmp / "out" / REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp / "out" / REPORT_MD).read_text()
    assert "| baseline | 6 |" in md and "| cnn | 6 |" in md and "| cnn − baseline | 6 |" in md


@pytest.mark.slow
def test_baseline_fold_matches_an_independent_fit_on_the_recorded_patients(setup_, full) -> None:
    """The numbers come from fitting on exactly the fold's fit patients and scoring its test patients."""
    doc, patch_dir, _ = setup_
    cfg = section(doc, "train_baseline", BaselineConfig)
    pool, _ = read_pool(patch_dir, TINY_CLASSES)
    x = extract_features(
        decode_pool(pool, patch_dir, cfg.image_size).permute(0, 2, 3, 1).contiguous().numpy(), cfg, progress=False
    )
    fold = full["folds"][4]
    fit_rows, test_rows = (np.isin(pool.patients, fold["patients"][k]) for k in ("fit", "test"))
    model, _ = fit_baseline(cfg, cfg.C, x[fit_rows], pool.labels[fit_rows])
    expected = classification_metrics(pool.labels[test_rows], model.predict(x[test_rows]), TINY_CLASSES)
    assert fold["results"]["baseline"]["confusion_matrix"] == expected["confusion_matrix"]
    assert fold["results"]["baseline"]["macro_f1"] == expected["macro_f1"]


@pytest.mark.slow
def test_mlflow_parent_run_with_one_child_per_model_and_fold(setup_, full) -> None:
    doc, _, _ = setup_
    mlflow.set_tracking_uri(doc["mlflow"]["tracking_uri"])
    client = MlflowClient()
    parent = client.get_run(full["parent_run_id"])
    assert parent.info.run_name == "kfold" and parent.data.tags["kind"] == "kfold"
    exp = client.get_experiment(parent.info.experiment_id)
    assert exp.name == f"{doc['mlflow']['experiment']}-{doc['task']['name']}"
    assert parent.data.metrics["cnn_macro_f1_mean"] == pytest.approx(full["summary"]["cnn"]["macro_f1"]["mean"])
    kids = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_name = {r.info.run_name: r for r in kids}
    assert len(kids) == 12 and len(by_name) == 12
    for f in full["folds"]:
        for m, result in f["results"].items():
            child = by_name[f"{m}-r{f['repeat']}-f{f['fold']}"]
            assert child.info.run_id == result["run_id"]
            assert child.data.metrics["macro_f1"] == pytest.approx(result["macro_f1"])
    assert "val_macro_f1" in by_name["cnn-r0-f0"].data.metrics  # the fold's training curve
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "kfold")}
    assert files == {f"kfold/{n}" for n in (REPORT_JSON, REPORT_MD, REPORT_PNG)}


@pytest.mark.slow
def test_max_folds_caps_the_run_and_reproduces_the_same_numbers(setup_, full) -> None:
    doc, patch_dir, tmp = setup_
    capped = kfold(doc, patch_dir, tmp / "capped", max_folds=2)
    assert capped["n_folds_run"] == 2 and capped["n_folds_total"] == 6
    assert [(f["repeat"], f["fold"]) for f in capped["folds"]] == [(0, 0), (0, 1)]
    assert [numbers(f) for f in capped["folds"]] == [numbers(f) for f in full["folds"][:2]]
    assert capped["summary"]["cnn"]["repeat_means"]["0"]["complete"] is False


@pytest.mark.slow
def test_a_fold_whose_training_part_lacks_a_class_is_skipped_with_its_reason_and_c_search(
    setup_, tmp_path: Path
) -> None:
    doc, patch_dir, _ = setup_
    (tmp_path / "patches").symlink_to(patch_dir / "patches")
    shutil.copy(patch_dir / "patches.parquet", tmp_path / "patches.parquet")
    table = pd.read_parquet(patch_dir / "patches.parquet")
    patients = sorted(set(table.patient_id.astype(str)))
    psoriasis = set(table[table.label == "psoriasis"].patient_id.astype(str))
    others = [p for p in patients if p not in psoriasis]
    folds = pd.DataFrame(
        {
            "patient_id": patients,
            "repeat": 0,
            "fold": [0 if p in psoriasis else 1 + others.index(p) % 2 for p in patients],
        }
    )
    folds.to_parquet(tmp_path / "folds.parquet")
    report = kfold(doc, tmp_path, tmp_path / "out", models=["baseline"], search_c=True)
    grid = doc["train_baseline"]["c_grid"]
    for scored in report["folds"][1:]:  # search_c: C picked per fold on its validation slice
        assert [row["C"] for row in scored["results"]["baseline"]["c_search"]] == grid
        assert scored["results"]["baseline"]["C"] in grid
    skipped = report["folds"][0]
    assert skipped["skipped"] and "psoriasis" in skipped["skipped"] and skipped["results"] == {}
    assert report["skipped"] == [{"repeat": 0, "fold": 0, "reason": skipped["skipped"]}]
    assert report["summary"]["baseline"]["n_folds"] == 2 and report["difference"] is None
    assert "Skipped folds" in (tmp_path / "out" / REPORT_MD).read_text()


@pytest.mark.slow
def test_missing_fold_table_names_the_file_and_the_setting(setup_, tmp_path: Path) -> None:
    doc, patch_dir, _ = setup_
    shutil.copy(patch_dir / "patches.parquet", tmp_path / "patches.parquet")
    with pytest.raises(DataError, match=r"folds\.parquet.*crop_patches\.kfold\.enabled"):
        kfold(doc, tmp_path, tmp_path / "out")


def test_skip_reason_branches() -> None:
    classes = ("a", "b")
    both = np.array([0, 1, 1])
    assert skip_reason(classes, np.array([0, 0]), both, 4) == "the training part has no patches of class(es) ['b']"
    assert skip_reason(classes, both, both, 0) == "the held-out fold has no patches"
    assert "too few training patients" in skip_reason(classes, both, None, 4)
    assert "validation slice took every" in skip_reason(classes, both, np.array([1, 1]), 4)
    assert skip_reason(classes, both, both, 4) is None


@pytest.mark.parametrize(
    "values, field",
    [
        ({"models": ["svm"]}, "models"),
        ({"models": []}, "models"),
        ({"max_folds": -1}, "max_folds"),
        ({"epochs": 0}, "epochs"),
        ({"val_fraction": 0.9}, "val_fraction"),
        ({"foo": 1}, "foo"),
    ],
)
def test_config_rejects_bad_values(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        section({"crossval": values}, "crossval", CrossvalConfig)


def test_the_old_evaluate_model_kfold_section_says_where_it_went(tmp_path: Path) -> None:
    from components.evaluate_model.core import EvaluateConfig

    with pytest.raises(ConfigError, match=r"evaluate_model.kfold moved to the `crossval` section"):
        section({"evaluate_model": {"kfold": {"enabled": True}}}, "evaluate_model", EvaluateConfig)


def test_disabled_crossval_records_that_it_was_skipped(tmp_path: Path) -> None:
    import json

    import yaml

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params(tmp_path)))
    crossval_cli.main(["--params", str(params), "--patches", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "crossval.enabled is false" in json.loads((tmp_path / "out" / REPORT_JSON).read_text())["skipped"]
