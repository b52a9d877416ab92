from dataclasses import replace
from typing import Any

import pytest

from components.common.gate import Decision
from components.evaluate_model.gate import GateConfig, decide

CFG = GateConfig(
    min_accuracy=0.6,
    min_macro_f1=0.6,
    min_class_recall=0.3,
    max_drop_vs_champion=0.02,
    min_test_samples=10,
    min_gain_vs_baseline=0.05,
)


def metrics(acc: float = 0.8, f1: float = 0.8, recalls: tuple = (0.8, 0.7), n: int = 50) -> dict:
    return {
        "accuracy": acc,
        "macro_f1": f1,
        "n": n,
        "per_class": {f"c{i}": {"recall": r, "support": 0 if r is None else 10} for i, r in enumerate(recalls)},
    }


BASELINE = {"macro_f1": 0.6, "n": 50}


def gate(
    challenger: dict | None = None, champion: dict | None = None, cfg: GateConfig = CFG, **kwargs: Any
) -> Decision:
    """decide() with every input that a healthy run has; each test changes one thing."""
    inputs = {"baseline": BASELINE, "validation_passed": True, "leak_patients": (), "diff_ci": None, **kwargs}
    return decide(challenger or metrics(), champion, cfg, **inputs)


def failed(decision: Decision) -> list[str]:
    return [r.name for r in decision.rules if not r.passed]


def rule(decision: Decision, name: str):
    return next(r for r in decision.rules if r.name == name)


def test_healthy_first_model_passes_with_no_champion_recorded() -> None:
    d = gate()
    assert d.passed and failed(d) == []
    assert [r.name for r in d.rules] == [
        "min_test_samples",
        "min_accuracy",
        "min_macro_f1",
        "recall[c0]",
        "recall[c1]",
        "group_recall",
        "beats_baseline",
        "non_inferior_to_champion",
        "validation_passed",
        "no_patient_leak",
    ]
    first = rule(d, "non_inferior_to_champion")
    assert first.passed and first.reason == "no champion yet: first model" and first.value is None


def test_as_dict_keeps_the_keys_promote_model_reads() -> None:
    doc = gate(metrics(acc=0.1)).as_dict()
    assert doc["passed"] is False and doc["failed"] == ["min_accuracy"]
    assert {"name", "value", "threshold", "passed", "verdict", "reason"} <= set(doc["rules"][0])
    assert [r["verdict"] for r in doc["rules"] if r["name"] == "min_accuracy"] == ["fail"]
    assert {r["verdict"] for r in doc["rules"] if r["name"] != "min_accuracy"} == {"pass"}


@pytest.mark.parametrize(
    ("challenger", "expected"),
    [
        (metrics(acc=0.5), ["min_accuracy"]),
        (metrics(f1=0.5), ["min_macro_f1"]),
        (metrics(recalls=(0.9, 0.1)), ["recall[c1]"]),
        (metrics(recalls=(0.9, None)), ["recall[c1]"]),
        (metrics(n=3), ["min_test_samples"]),
    ],
)
def test_each_floor_fails_alone(challenger: dict, expected: list[str]) -> None:
    d = gate(challenger, baseline={"macro_f1": 0.4})  # no n: the baseline's split size is not checked
    assert not d.passed and failed(d) == expected


def test_class_without_test_samples_names_the_unknown_sensitivity() -> None:
    r = rule(gate(metrics(recalls=(0.9, None))), "recall[c1]")
    assert r.value is None and "no test samples of c1" in r.reason


@pytest.mark.parametrize(
    ("baseline", "passes", "reason"),
    [
        (None, False, "no baseline metrics"),
        ({"macro_f1": 0.80}, False, "< +0.0500"),  # CNN only ties the classic baseline
        ({"macro_f1": 0.76}, False, "< +0.0500"),  # gains, but less than the required margin
        ({"macro_f1": 0.75}, True, "≥ +0.0500"),  # exactly the margin
        ({"macro_f1": 0.40}, True, "≥ +0.0500"),
        ({"macro_f1": 0.40, "n": 49}, False, "not the same test split"),
    ],
)
def test_beats_baseline(baseline: dict | None, passes: bool, reason: str) -> None:
    d = gate(metrics(f1=0.8), baseline=baseline)
    r = rule(d, "beats_baseline")
    assert r.passed is passes and d.passed is passes and reason in r.reason
    if baseline is not None and "n" not in baseline:
        assert r.value == pytest.approx(0.8 - baseline["macro_f1"]) and r.threshold == CFG.min_gain_vs_baseline


@pytest.mark.parametrize(
    ("champion_f1", "diff_ci", "passes"),
    [
        (0.70, None, True),  # point difference: better
        (0.81, None, True),  # worse by 0.01, inside the 0.02 margin
        (0.83, None, False),  # worse by 0.03
        (0.80, (-0.015, 0.02), True),  # CI lower bound inside the margin
        (0.80, (-0.020, 0.02), True),  # exactly at the margin
        (0.80, (-0.050, 0.03), False),  # same point estimate, but too uncertain to rule out a drop
        (0.70, (-0.030, 0.20), False),  # better on average, CI still reaches past the margin
    ],
)
def test_non_inferiority_against_champion(champion_f1: float, diff_ci: tuple | None, passes: bool) -> None:
    d = gate(metrics(f1=0.8), metrics(f1=champion_f1), diff_ci=diff_ci)
    assert d.passed is passes
    assert d.as_dict()["failed"] == ([] if passes else ["non_inferior_to_champion"])
    r = rule(d, "non_inferior_to_champion")
    assert r.threshold == -CFG.max_drop_vs_champion
    if diff_ci is None:
        assert r.value == pytest.approx(0.8 - champion_f1) and "point difference" in r.reason
    else:
        assert r.value == diff_ci[0] and "paired patient-bootstrap CI" in r.reason


@pytest.mark.parametrize(
    ("required", "validation_passed", "passes", "reason"),
    [
        (True, True, True, "validate_annotations passed"),
        (True, False, False, "validate_annotations failed"),
        (True, None, False, "validation report missing"),
        (False, None, True, "not required"),
        (False, False, True, "not required"),
    ],
)
def test_validation_rule(required: bool, validation_passed: bool | None, passes: bool, reason: str) -> None:
    d = gate(cfg=replace(CFG, require_validation_passed=required), validation_passed=validation_passed)
    r = rule(d, "validation_passed")
    assert r.passed is passes and d.passed is passes and reason in r.reason


@pytest.mark.parametrize(
    ("required", "leaks", "passes", "reason"),
    [
        (True, (), True, "no test patient appears in train or val"),
        (True, ("p7", "p2"), False, "2 test patient(s) also in train/val: ['p2', 'p7']"),
        (False, ("p7",), True, "not required"),
    ],
)
def test_patient_leak_rule(required: bool, leaks: tuple, passes: bool, reason: str) -> None:
    d = gate(cfg=replace(CFG, require_no_patient_leak=required), leak_patients=leaks)
    r = rule(d, "no_patient_leak")
    assert r.passed is passes and d.passed is passes and reason in r.reason
    assert r.value == len(leaks) and r.threshold == 0


def test_every_failure_is_reported_not_just_the_first() -> None:
    d = gate(metrics(acc=0.1, n=2), metrics(f1=0.95), baseline=None, validation_passed=None, leak_patients=("p1",))
    assert failed(d) == [
        "min_test_samples",
        "min_accuracy",
        "beats_baseline",
        "non_inferior_to_champion",
        "validation_passed",
        "no_patient_leak",
    ]
