"""The promotion gate: a pure function from metrics to a decision with one reason per rule.

Absolute floors protect patients whatever happened before; the classic baseline proves the CNN
earns its complexity; the comparison with the champion (evaluated on the same test set, paired
patient bootstrap) stops regressions; the data rules refuse a model built on a failed validation
or on a split where test patients were also trained on. "No champion yet" is an explicit,
recorded outcome, not a silent skip, and a rule that is switched off is still listed as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.common.gate import Decision, Rule


@dataclass(frozen=True)
class GateConfig:
    """The `evaluate_model.gate` section of params.yaml."""

    min_accuracy: float = 0.5
    min_macro_f1: float = 0.5
    min_class_recall: float = 0.2  # every class, so no disease is silently ignored
    max_drop_vs_champion: float = 0.02  # non-inferiority margin on macro-F1
    min_test_samples: int = 20
    min_gain_vs_baseline: float = 0.0  # macro-F1 the CNN must beat the classic baseline by
    require_validation_passed: bool = True
    require_no_patient_leak: bool = True


def _floor(name: str, value: float, threshold: float) -> Rule:
    ok = value >= threshold
    return Rule(name, value, threshold, ok, f"{value:.4f} {'≥' if ok else '<'} {threshold:.4f}")


def _recall_rules(challenger: dict[str, Any], cfg: GateConfig) -> list[Rule]:
    rules = []
    for cls, m in challenger["per_class"].items():
        if m["support"] == 0:
            rules.append(Rule(f"recall[{cls}]", None, cfg.min_class_recall, False,
                              f"no test samples of {cls}: its sensitivity is unknown"))
        else:
            rules.append(_floor(f"recall[{cls}]", m["recall"], cfg.min_class_recall))
    return rules


def _baseline_rule(challenger: dict[str, Any], baseline: dict[str, Any] | None, cfg: GateConfig) -> Rule:
    name, need = "beats_baseline", cfg.min_gain_vs_baseline
    if baseline is None:
        return Rule(name, None, need, False, "no baseline metrics: the CNN must be compared with the classic baseline")
    if baseline.get("n") is not None and baseline["n"] != challenger["n"]:
        return Rule(name, None, need, False, f"baseline scored on {baseline['n']} test samples, the challenger "
                                             f"on {challenger['n']}: not the same test split")
    gain = challenger["macro_f1"] - baseline["macro_f1"]
    ok = gain >= need
    return Rule(name, gain, need, ok, f"macro-F1 {challenger['macro_f1']:.4f} − baseline {baseline['macro_f1']:.4f} "
                                      f"= {gain:+.4f} {'≥' if ok else '<'} {need:+.4f}")


def _champion_rule(challenger: dict[str, Any], champion: dict[str, Any] | None, cfg: GateConfig,
                   diff_ci: Sequence[float] | None) -> Rule:
    name, floor = "non_inferior_to_champion", -cfg.max_drop_vs_champion
    if champion is None:
        return Rule(name, None, None, True, "no champion yet: first model")
    diff = challenger["macro_f1"] - champion["macro_f1"]
    if diff_ci is None:
        ok = diff >= floor
        return Rule(name, diff, floor, ok, f"macro-F1 {challenger['macro_f1']:.4f} − champion "
                                           f"{champion['macro_f1']:.4f} = {diff:+.4f} {'≥' if ok else '<'} "
                                           f"{floor:+.4f} (point difference, no bootstrap interval)")
    low = float(diff_ci[0])
    ok = low >= floor
    return Rule(name, low, floor, ok, f"macro-F1 difference {diff:+.4f}, paired patient-bootstrap CI "
                                      f"[{low:+.4f}, {float(diff_ci[1]):+.4f}]: lower bound "
                                      f"{'≥' if ok else '<'} {floor:+.4f}")


def _switch(name: str, required: bool, ok: bool, value: float | None, threshold: float | None,
            reason: str) -> Rule:
    if not required:
        return Rule(name, value, threshold, True, f"not required by the gate config ({reason})")
    return Rule(name, value, threshold, ok, reason)


def _validation_rule(validation_passed: bool | None, cfg: GateConfig) -> Rule:
    reason = ("validation report missing" if validation_passed is None
              else f"validate_annotations {'passed' if validation_passed else 'failed'}")
    return _switch("validation_passed", cfg.require_validation_passed, bool(validation_passed),
                   None if validation_passed is None else float(validation_passed), 1.0, reason)


def _leak_rule(leak_patients: Sequence[str], cfg: GateConfig) -> Rule:
    leaks = sorted(leak_patients)
    reason = (f"{len(leaks)} test patient(s) also in train/val: {leaks[:5]}{' …' if len(leaks) > 5 else ''}"
              if leaks else "no test patient appears in train or val")
    return _switch("no_patient_leak", cfg.require_no_patient_leak, not leaks, float(len(leaks)), 0.0, reason)


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None, cfg: GateConfig, *,
           baseline: dict[str, Any] | None = None, validation_passed: bool | None = None,
           leak_patients: Sequence[str] = (), diff_ci: Sequence[float] | None = None) -> Decision:
    """Apply every rule; the gate passes only if all pass (fail hard by default).

    `challenger`/`champion`/`baseline` are `classification_metrics` dicts on the same test split;
    `diff_ci` is the paired bootstrap interval of challenger − champion macro-F1.
    """
    rules = [
        Rule("min_test_samples", challenger["n"], cfg.min_test_samples, challenger["n"] >= cfg.min_test_samples,
             f"{challenger['n']} test samples (need {cfg.min_test_samples})"),
        _floor("min_accuracy", challenger["accuracy"], cfg.min_accuracy),
        _floor("min_macro_f1", challenger["macro_f1"], cfg.min_macro_f1),
        *_recall_rules(challenger, cfg),
        _baseline_rule(challenger, baseline, cfg),
        _champion_rule(challenger, champion, cfg, diff_ci),
        _validation_rule(validation_passed, cfg),
        _leak_rule(leak_patients, cfg),
    ]
    return Decision(all(r.passed for r in rules), tuple(rules))
