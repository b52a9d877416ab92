import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.common.bootstrap import BootstrapConfig
from components.common.errors import DataError, GateFailed
from components.common.io import read_json, write_json
from components.common.tracking import TrackingConfig
from components.evaluate_model.subgroups import subgroup_table
from components.promote_model.audit import alias_move, append_audit, audit_path, champion_before, read_audit
from components.promote_model.card import model_card, most_confused
from components.promote_model.config import PromoteConfig
from components.promote_model.core import gate_report, run

BOOT = BootstrapConfig(n_resamples=100, seed=0)

SUMMARY = {
    "run_id": "abc",
    "model_uri": "models:/m-1",
    "data_version": "md5:1234",
    "arch": "small_cnn",
    "classes": ["eczema", "psoriasis", "lupus"],
}
DECISION = {
    "passed": True,
    "champion_version": "3",
    "run_id": "abc",
    "rules": [
        {"name": "min_accuracy", "value": 0.8, "threshold": 0.5, "passed": True, "reason": "0.8000 ≥ 0.5000"},
        {"name": "recall[lupus]", "value": 0.1, "threshold": 0.2, "passed": False, "reason": "0.1000 < 0.2000"},
    ],
}
METRICS = {
    "test_accuracy": 0.8,
    "test_macro_f1": 0.75,
    "n_test": 30,
    "per_class": {
        c: {"recall": r, "precision": 0.7, "support": 10}
        for c, r in (("eczema", 0.9), ("psoriasis", 0.8), ("lupus", 0.1))
    },
    "confusion_matrix": [[9, 1, 0], [2, 8, 0], [1, 8, 1]],
}


def _folders(tmp_path: Path, summary: dict[str, Any], decision: dict[str, Any]) -> tuple[Path, Path]:
    (tmp_path / "train").mkdir()
    (tmp_path / "eval").mkdir()
    (tmp_path / "train" / "train_summary.json").write_text(json.dumps(summary))
    (tmp_path / "eval" / "decision.json").write_text(json.dumps(decision))
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(METRICS))
    return tmp_path / "train", tmp_path / "eval"


def test_failed_gate_is_refused_with_reasons(tmp_path: Path) -> None:
    train, evaluation = _folders(
        tmp_path,
        {"run_id": "abc", "model_uri": "x"},
        {
            "passed": False,
            "rules": [
                {"name": "min_accuracy", "passed": False, "reason": "0.4 < 0.5"},
                {"name": "min_macro_f1", "passed": True, "reason": "ok"},
            ],
        },
    )
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    cfg = PromoteConfig(audit_log=str(tmp_path / "audit.jsonl"))
    with pytest.raises(GateFailed, match=r"min_accuracy: 0.4 < 0.5") as err:
        run(cfg, tracking, train, evaluation, tmp_path / "out")
    assert "min_macro_f1" not in str(err.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "audit.jsonl").exists()


def test_missing_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="decision.json"):
        run(PromoteConfig(), TrackingConfig(), tmp_path / "train", tmp_path / "eval", tmp_path / "out")


@pytest.mark.parametrize(
    ("summary", "decision", "match"),
    [
        ({**SUMMARY, "kind": "segmenter"}, {**DECISION, "passed": True}, "kind must be one of"),
        ({"run_id": "abc"}, {**DECISION, "passed": True}, r"missing \['model_uri'\]"),
        (SUMMARY, {**DECISION, "passed": True, "run_id": "other"}, "evaluates run other"),
    ],
)
def test_inconsistent_inputs_are_refused_before_the_registry(
    tmp_path: Path, summary: dict[str, Any], decision: dict[str, Any], match: str
) -> None:
    train, evaluation = _folders(tmp_path, summary, decision)
    with pytest.raises(DataError, match=match):
        run(
            PromoteConfig(audit_log=str(tmp_path / "audit.jsonl")),
            TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
            train,
            evaluation,
            tmp_path / "out",
        )
    assert not (tmp_path / "mlflow.db").exists()


def test_gate_report_is_one_compact_verdict_per_rule() -> None:
    assert gate_report(DECISION) == "min_accuracy=pass;recall[lupus]=FAIL"


@pytest.mark.parametrize(
    ("extra", "expected", "absent"),
    [
        (
            {"ci": {"macro_f1": [0.61, 0.83], "accuracy": [0.7, 0.9]}},  # evaluate_model's keys: no test_ prefix
            [
                "| metric | value | 95 % CI |",
                "| test_macro_f1 | 0.7500 | [0.6100, 0.8300] |",
                "| test_accuracy | 0.8000 | [0.7000, 0.9000] |",
                "patient-level bootstrap",
            ],
            "not computed",
        ),
        (
            {"ci": {"test_macro_f1": [0.61, 0.83]}, "bootstrap": {"confidence": 0.9}},
            [
                "| metric | value | 90 % CI |",
                "| test_macro_f1 | 0.7500 | [0.6100, 0.8300] |",
                "| test_accuracy | 0.8000 | — |",
            ],
            "not computed",
        ),
        ({}, ["| test_macro_f1 | 0.7500 | — |", "Confidence intervals: not computed"], "bootstrap"),
    ],
)
def test_card_shows_confidence_intervals_or_says_they_are_missing(
    extra: dict[str, Any], expected: list[str], absent: str
) -> None:
    metrics = {**METRICS, **extra}
    card = model_card(SUMMARY, metrics, DECISION, None, name="es_skin_classifier", version="4")
    assert card.startswith("# Model card: es_skin_classifier v4\n")
    for line in expected:
        assert line in card
    assert absent not in card


def test_card_covers_use_data_classes_calibration_gate_and_limits() -> None:
    report = {
        "per_split_class_counts": {
            "train": {"eczema": 40, "psoriasis": 40, "lupus": 40},
            "test": {"eczema": 10, "psoriasis": 10, "lupus": 10},
        },
        "patients_per_split": {"train": 50, "test": 12},
    }
    metrics = {
        **METRICS,
        "temperature": 1.7,
        "test_ece": 0.12,
        "test_ece_calibrated": 0.04,
        "n_test_patients": 12,
        "diff_ci": [-0.015, 0.05],
    }
    card = model_card(SUMMARY, metrics, DECISION, report)
    assert "not a diagnostic device" in card and "md5:1234" in card
    assert "| split | eczema | lupus | psoriasis | patients |" in card and "| test | 10 | 10 | 10 | 12 |" in card
    assert "| lupus | 0.1000 | 0.7000 | 10 |" in card
    assert "| temperature | 1.7000 |" in card and "| test_ece_calibrated | 0.0400 |" in card
    assert "[-0.0150, +0.0500]" in card and "30 samples, 12 patients" in card
    assert "evaluated against champion v3" in card and "| recall[lupus] | 0.1000 | 0.2000 | FAIL |" in card
    assert "`lupus` is most often predicted as `psoriasis` (8 of 10" in card
    assert "split by patient" in card and "Test patients: 12" in card


def test_card_shows_metrics_per_subgroup_with_cis_from_evaluate_models_table(tmp_path: Path) -> None:
    patients = [f"p{i}" for i in range(6) for _ in range(4)]
    y = np.array([0, 1, 2, 2] * 6)
    pred = np.where(np.arange(24) >= 16, 0, y)  # the two "dark" patients: every patch called eczema
    tone = ["light"] * 16 + ["dark"] * 8
    labels = {"skin_tone": tone, "body_site": ["arm", "leg"] * 12}
    table = subgroup_table(labels, y, pred, patients, patients, tuple(SUMMARY["classes"]), BOOT)
    written = tmp_path / "subgroups.json"  # as promote_model reads it back: JSON with sorted keys
    write_json(written, {**table, "min_group_size": 3, "min_group_recall": 0.2})
    card = model_card(SUMMARY, METRICS, DECISION, None, subgroups=read_json(written))
    assert card.index("### By skin tone") < card.index("### By body site") < card.index("## Calibration")
    assert "| group | patches | patients | accuracy [95 % CI] | macro-F1 [CI] | worst class recall | gated |" in card
    assert (
        "| dark | 8 | 2 | 0.250 [0.250, 0.250] |" in card
        and "| 0.000 [0.000, 0.000] (psoriasis) | no (too few patients) |" in card
    )
    assert (
        "| light | 16 | 4 | 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] (eczema) | yes |" in card
    )
    assert "Not known for this data (no column): camera." in card
    assert "with ≥ 3 patients must reach 0.2000 (`gate.min_group_recall`)" in card
    assert "## Subgroups\n\nNot reported" in model_card(SUMMARY, METRICS, DECISION, None)


def test_nested_calibration_is_flattened() -> None:
    card = model_card(SUMMARY, {**METRICS, "calibration": {"temperature": 1.5, "after": {"ece": 0.03}}}, DECISION, None)
    assert "| temperature | 1.5000 |" in card and "| after.ece | 0.0300 |" in card


def test_card_says_what_it_could_not_read() -> None:
    card = model_card({"run_id": "r", "model_uri": "u"}, {}, {"passed": True, "rules": []}, None)
    assert "without `--patches`" in card and "No test metrics" in card and "Per-class recall" in card
    assert "Calibration" in card and "Not reported" in card and "no `confusion_matrix`" in card


def test_detector_card_reports_ap_per_class() -> None:
    metrics = {"test_map50": 0.61, "n_test_images": 12, "n_test_boxes": 30, "per_class_ap50": {"eczema": 0.7}}
    card = model_card({"run_id": "r", "model_uri": "u", "kind": "detector"}, metrics, DECISION, None)
    assert "proposes boxes" in card and "| test_map50 | 0.6100 | — |" in card
    assert "| eczema | 0.7000 |" in card and "12 images, 30 boxes" in card


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [([[5, 0], [0, 5]], None), ([[5, 1], [3, 2]], ("b", "a", 3, 5)), ([[0, 2], [2, 0]], ("a", "b", 2, 2))],
)
def test_most_confused_pair(matrix: list[list[int]], expected: tuple[str, str, int, int] | None) -> None:
    assert most_confused(matrix, ["a", "b"]) == expected


def test_audit_round_trip_and_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = audit_path("logs/audit.jsonl")
    assert path == tmp_path / "logs" / "audit.jsonl" and read_audit(path) == []
    record = alias_move("promote", "m", "champion", None, "1", "run-1", "gate passed")
    append_audit(path, record)
    assert read_audit(path) == [record]
    assert set(record) == {
        "time",
        "action",
        "model",
        "alias",
        "from_version",
        "to_version",
        "run_id",
        "user",
        "host",
        "reason",
    } and record["time"].endswith("+00:00")
    with path.open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(DataError, match="line 2 is not JSON"):
        read_audit(path)


def test_champion_before_follows_promotions_not_rollbacks() -> None:
    moves = [
        ("promote", None, "1"),
        ("promote", "1", "2"),
        ("promote", "2", "3"),
        ("rollback", "3", "2"),
        ("promote", "2", "4"),
    ]
    records = [
        {"action": a, "model": "m", "alias": "champion", "from_version": f, "to_version": t} for a, f, t in moves
    ]
    assert champion_before(records, "m", "champion", "2") == "1"
    assert champion_before(records, "m", "champion", "1") is None
    assert champion_before(records, "other", "champion", "2") is None
