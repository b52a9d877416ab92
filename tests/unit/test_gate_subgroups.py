"""Subgroup metrics (evaluate_model/subgroups.py) and the worst-group gate rule, both ways."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.bootstrap import BootstrapConfig
from components.evaluate_model.gate import GateConfig, decide
from components.evaluate_model.subgroups import GROUPINGS, group_labels, subgroup_table

CLASSES = ("a", "b")
CFG = GateConfig(
    min_accuracy=0.0, min_macro_f1=0.0, min_class_recall=0.0, min_test_samples=1, min_group_recall=0.5, min_group_size=3
)
BOOT = BootstrapConfig(n_resamples=200, seed=0)
HEALTHY = {"accuracy": 0.9, "macro_f1": 0.9, "n": 40, "per_class": {c: {"recall": 0.9, "support": 20} for c in CLASSES}}


def row(group: str, n_patients: int, worst: float | None, worst_class: str | None = "b") -> dict:
    return {"group": group, "n_patients": n_patients, "worst_recall": worst, "worst_class": worst_class}


def group_rule(groupings: dict, cfg: GateConfig = CFG):
    decision = decide(
        HEALTHY, None, cfg, baseline={"macro_f1": 0.0}, validation_passed=True, subgroups={"groupings": groupings}
    )
    return decision, {r.name: r for r in decision.rules if r.name.startswith("group_recall")}


def test_a_gated_group_below_the_floor_refuses_the_model_and_is_named() -> None:
    decision, rules = group_rule({"skin_tone": [row("light", 5, 0.9), row("dark", 4, 0.25)]})
    assert not decision.passed and decision.as_dict()["failed"] == ["group_recall[skin_tone]"]
    rule = rules["group_recall[skin_tone]"]
    assert rule.value == 0.25 and rule.threshold == 0.5
    assert "skin_tone=dark (4 patients): recall[b] 0.2500 < 0.5000" in rule.reason


def test_gated_groups_at_or_above_the_floor_pass() -> None:
    decision, rules = group_rule(
        {"skin_tone": [row("light", 5, 0.9), row("dark", 3, 0.5)], "body_site": [row("arm", 8, 0.75)]}
    )
    assert decision.passed and set(rules) == {"group_recall[skin_tone]", "group_recall[body_site]"}
    assert rules["group_recall[skin_tone]"].value == 0.5 and "skin_tone=dark" in rules["group_recall[skin_tone]"].reason


def test_a_tiny_group_below_the_floor_is_reported_not_gated() -> None:
    decision, rules = group_rule({"skin_tone": [row("light", 5, 0.9), row("dark", 2, 0.0)]})
    assert decision.passed
    rule = rules["group_recall[skin_tone]"]
    assert rule.value == 0.9 and "under 3 patients, reported not gated: dark" in rule.reason


def test_no_group_big_enough_or_no_subgroup_column_is_stated() -> None:
    decision, rules = group_rule({"body_site": [row("arm", 2, 0.0), row("leg", 1, 0.1)]})
    assert decision.passed and rules["group_recall[body_site]"].value is None
    assert "no body_site group has ≥ 3 patients" in rules["group_recall[body_site]"].reason
    decision, rules = group_rule({})
    assert decision.passed and rules["group_recall"].reason == "no subgroup column known: not gated"


def test_subgroup_table_counts_patients_and_takes_the_worst_present_class() -> None:
    # 6 patients × 4 patches; "dark" patients 3-5 have every "b" patch wrong, "light" is perfect
    patients = [f"p{i}" for i in range(6) for _ in range(4)]
    y = np.array([0, 0, 1, 1] * 6)
    pred = y.copy()
    pred[12:] = np.where(y[12:] == 1, 0, y[12:])
    tone = ["light"] * 12 + ["dark"] * 12
    table = subgroup_table({"skin_tone": tone}, y, pred, patients, patients, CLASSES, BOOT)
    light, dark = table["groupings"]["skin_tone"]  # tone categories lightest first
    assert (dark["group"], dark["n"], dark["n_patients"]) == ("dark", 12, 3)
    assert dark["worst_class"] == "b" and dark["worst_recall"] == 0.0 and dark["accuracy"] == 0.5
    assert dark["per_class"]["a"]["recall_ci"] == [1.0, 1.0] and dark["per_class"]["b"]["support"] == 6
    assert light["worst_recall"] == 1.0 and light["ci"]["macro_f1"] == [1.0, 1.0]
    lo, hi = dark["ci"]["accuracy"]
    assert lo <= dark["accuracy"] <= hi
    assert table["not_known"] == ["body_site", "camera"] and table["bootstrap"]["n_resamples"] == 200
    assert not decide(HEALTHY, None, CFG, baseline={"macro_f1": 0.0}, validation_passed=True, subgroups=table).passed


def test_groups_read_lightest_tone_first_unknown_last_and_groupings_keep_their_order() -> None:
    tones = ["unknown", "dark", "tan", "very_light", "tan", "brown"]
    sites = ["scalp", "arm", "arm", "knee", "hand", "arm"]
    y = np.zeros(6, dtype=int)
    ids = [str(i) for i in range(6)]
    table = subgroup_table({"skin_tone": tones, "body_site": sites}, y, y, ids, ids, CLASSES, BOOT)
    assert [r["group"] for r in table["groupings"]["skin_tone"]] == ["very_light", "tan", "brown", "dark", "unknown"]
    assert [r["group"] for r in table["groupings"]["body_site"]] == ["arm", "hand", "knee", "scalp"]
    assert table["order"] == ["skin_tone", "body_site"]


def test_a_mixed_group_has_a_bootstrap_interval_around_its_score() -> None:
    rng = np.random.default_rng(1)
    patients = [f"p{i}" for i in range(20) for _ in range(5)]
    y = rng.integers(0, 2, 100)
    pred = np.where(rng.random(100) < 0.7, y, 1 - y)
    table = subgroup_table({"skin_tone": ["tan"] * 100}, y, pred, patients, patients, CLASSES, BOOT)
    (tan,) = table["groupings"]["skin_tone"]
    for metric in ("accuracy", "macro_f1"):
        lo, hi = tan["ci"][metric]
        assert lo < tan[metric] < hi
    assert all(r["recall_ci"][0] < r["recall"] < r["recall_ci"][1] for r in tan["per_class"].values())


def test_group_labels_follow_the_test_split_order_and_skip_unknown_columns(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "patch_path": ["c.png", "a.png", "b.png", "t.png"],
            "split": ["test", "test", "test", "train"],
            "label": ["a", "b", "a", "a"],
            "patient_id": ["p1", "p2", "p3", "p4"],
            "skin_tone": ["dark", None, "light", "tan"],
            "body_site": ["", "", None, "arm"],
            "camera": ["Canon EOS 80D", None, "DermLite DL4", ""],
        }
    ).to_parquet(tmp_path / "patches.parquet")
    labels = group_labels(tmp_path, CLASSES)
    assert labels == {  # sorted by patch_path, like load_split
        "skin_tone": ["unknown", "light", "dark"],
        "camera": ["unknown", "DermLite DL4", "Canon EOS 80D"],
    }
    assert set(GROUPINGS) == {"skin_tone", "body_site", "camera"}


@pytest.mark.parametrize("size", [0, 1])
def test_every_group_counts_with_a_zero_or_one_patient_floor(size: int) -> None:
    cfg = GateConfig(min_group_recall=0.5, min_group_size=size)
    decision = decide(
        HEALTHY, None, cfg, baseline={"macro_f1": 0.0}, subgroups={"groupings": {"s": [row("x", 1, 0.4)]}}
    )
    assert "group_recall[s]" in decision.as_dict()["failed"]
