"""The promotion gate: a pure function from metrics to a decision with one reason per rule.

Absolute floors protect patients whatever happened before; the comparison with the champion
(evaluated on the same test set) stops regressions. "No champion yet" is an explicit, recorded
outcome of that rule, not a silent skip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class Rule:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    passed: bool
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "rules": [asdict(r) for r in self.rules],
                "failed": [r.name for r in self.rules if not r.passed]}


def _floor(name: str, value: float, threshold: float) -> Rule:
    ok = value >= threshold
    return Rule(name, value, threshold, ok, f"{value:.4f} {'≥' if ok else '<'} {threshold:.4f}")


def _champion_rule(challenger: dict[str, Any], champion: dict[str, Any] | None, cfg: GateConfig) -> Rule:
    if champion is None:
        return Rule("non_inferior_to_champion", None, None, True, "no champion yet: first model")
    floor = champion["macro_f1"] - cfg.max_drop_vs_champion
    ok = challenger["macro_f1"] >= floor
    return Rule("non_inferior_to_champion", challenger["macro_f1"], floor, ok,
                f"macro-F1 {challenger['macro_f1']:.4f} vs champion {champion['macro_f1']:.4f} "
                f"(allowed drop {cfg.max_drop_vs_champion:.4f})")


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None, cfg: GateConfig) -> Decision:
    """Apply every rule; the gate passes only if all pass (fail hard by default)."""
    rules = [
        Rule("min_test_samples", challenger["n"], cfg.min_test_samples, challenger["n"] >= cfg.min_test_samples,
             f"{challenger['n']} test samples (need {cfg.min_test_samples})"),
        _floor("min_accuracy", challenger["accuracy"], cfg.min_accuracy),
        _floor("min_macro_f1", challenger["macro_f1"], cfg.min_macro_f1),
    ]
    for cls, m in challenger["per_class"].items():
        if m["support"] == 0:
            rules.append(Rule(f"recall[{cls}]", None, cfg.min_class_recall, False,
                              f"no test samples of {cls}: its sensitivity is unknown"))
        else:
            rules.append(_floor(f"recall[{cls}]", m["recall"], cfg.min_class_recall))
    rules.append(_champion_rule(challenger, champion, cfg))
    return Decision(all(r.passed for r in rules), tuple(rules))
