"""The promotion gate: a pure function from metrics to a decision with one reason per rule.

Absolute floors protect patients whatever happened before, on the whole test set and on its worst
subgroup (skin tone, body site: a group with fewer than `min_group_size` patients is too noisy to
gate and is only reported); the classic baseline proves the CNN earns its complexity; the
comparison with the champion (evaluated on the same test set, paired patient bootstrap) stops
regressions; the data rules refuse a model built on a failed validation or on a split where test
patients were also trained on. "No champion yet" is an explicit, recorded outcome, not a silent
skip, and a rule that is switched off is still listed as such.

The champion rule and the test set's resolution. A test set of P patients can only tell apart
differences larger than its *resolution* r: the half-width of the paired patient-bootstrap CI of
(challenger − champion) macro-F1, i.e. the smallest difference it can show at the configured
confidence. `decision.json` states r. Classic non-inferiority (CI lower bound ≥ −δ, δ =
`max_drop_vs_champion`) is only decidable when r < δ; on the demo's 35 test patients r ≈ 0.06, so
it refused every retrain that was not ~8 points better — a retrained challenger 5.4 points better
was refused and the feedback loop would almost never promote. `margin_rule: resolution` therefore
uses the margin max(δ, r):

* r ≤ δ (a test set large enough for δ): the classic rule, unchanged;
* r > δ: the lower bound must be ≥ −r, i.e. the centre of the paired interval ≥ 0 — the challenger
  is at least as good as the champion on the best estimate this test set can give, and a difference
  the test set cannot resolve is not held against it;
* in both cases the observed difference must be ≥ −δ: a challenger that scores worse than the
  champion by more than δ on the shared test set is never promoted, however wide the interval.

So a clearly better challenger is promoted, a worse one is not, and only differences below the test
set's resolution (which no rule on this test set could call) go either way. `margin_rule: fixed` is
the classic rule alone. tests/unit/test_gate_resolution.py runs both sides through the real patient
bootstrap at the demo's test-set size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.common.gate import Decision, Rule

MARGIN_RULES = ("fixed", "resolution")


@dataclass(frozen=True)
class GateConfig:
    """The `evaluate_model.gate` section of params.yaml."""

    min_accuracy: float = 0.5
    min_macro_f1: float = 0.5
    min_class_recall: float = 0.2  # every class, so no disease is silently ignored
    max_drop_vs_champion: float = 0.02  # non-inferiority margin on macro-F1
    margin_rule: str = "fixed"  # fixed: CI low ≥ −margin | resolution: margin = max(it, the test set's resolution)
    min_test_samples: int = 20
    min_gain_vs_baseline: float = 0.0  # macro-F1 the CNN must beat the classic baseline by
    require_validation_passed: bool = True
    require_no_patient_leak: bool = True
    min_group_recall: float = 0.0  # worst per-class recall in any subgroup (tone, body site) big enough to gate
    min_group_size: int = 10  # patients; a smaller subgroup is reported, not gated

    def __post_init__(self) -> None:
        if self.margin_rule not in MARGIN_RULES:
            from components.common.errors import ConfigError

            raise ConfigError(
                f"evaluate_model.gate.margin_rule: expected one of {list(MARGIN_RULES)}, found {self.margin_rule!r}"
            )


def resolution(
    diff_ci: Sequence[float] | None,
    challenger_ci: Sequence[float] | None,
    n_patients: int,
    n_test: int,
    confidence: float,
) -> dict[str, Any]:
    """The smallest macro-F1 difference this test set can show: the half-width of the paired
    (challenger − champion) interval, or with no champion yet the half-width of the challenger's
    own macro-F1 interval (how precisely the test set pins one model's score)."""
    basis, ci = (
        ("paired challenger − champion", diff_ci) if diff_ci is not None else ("challenger alone", challenger_ci)
    )
    half = None if ci is None else (float(ci[1]) - float(ci[0])) / 2.0
    statement = (
        f"{n_test} test samples from {n_patients} patients: differences in macro-F1 smaller than "
        f"±{half:.3f} are not resolved at {confidence:.0%} ({basis}, patient bootstrap)"
        if half is not None
        else "no bootstrap interval: resolution unknown"
    )
    return {
        "macro_f1": half,
        "basis": basis,
        "n_test_patients": n_patients,
        "n_test": n_test,
        "confidence": confidence,
        "statement": statement,
    }


def _floor(name: str, value: float, threshold: float) -> Rule:
    ok = value >= threshold
    return Rule(name, value, threshold, ok, f"{value:.4f} {'≥' if ok else '<'} {threshold:.4f}")


def _recall_rules(challenger: dict[str, Any], cfg: GateConfig) -> list[Rule]:
    rules = []
    for cls, m in challenger["per_class"].items():
        if m["support"] == 0:
            rules.append(
                Rule(
                    f"recall[{cls}]",
                    None,
                    cfg.min_class_recall,
                    False,
                    f"no test samples of {cls}: its sensitivity is unknown",
                )
            )
        else:
            rules.append(_floor(f"recall[{cls}]", m["recall"], cfg.min_class_recall))
    return rules


def worst_gated(rows: Sequence[dict[str, Any]], min_size: int) -> dict[str, Any] | None:
    """The subgroup row with ≥ `min_size` patients and the lowest worst per-class recall; None if none."""
    gated = [r for r in rows if r["n_patients"] >= min_size and r["worst_recall"] is not None]
    return min(gated, key=lambda r: r["worst_recall"]) if gated else None


def _group_rule(grouping: str, rows: Sequence[dict[str, Any]], cfg: GateConfig) -> Rule:
    """Worst subgroup of one grouping: a model may pass on average and fail one skin tone."""
    name, need, size = f"group_recall[{grouping}]", cfg.min_group_recall, cfg.min_group_size
    small = sorted(r["group"] for r in rows if r["n_patients"] < size)
    aside = f"; under {size} patients, reported not gated: {', '.join(small)}" if small else ""
    worst = worst_gated(rows, size)
    if worst is None:
        return Rule(name, None, need, True, f"no {grouping} group has ≥ {size} patients: reported, not gated{aside}")
    ok = worst["worst_recall"] >= need
    return Rule(
        name,
        worst["worst_recall"],
        need,
        ok,
        f"worst group {grouping}={worst['group']} ({worst['n_patients']} patients): recall[{worst['worst_class']}] "
        f"{worst['worst_recall']:.4f} {'≥' if ok else '<'} {need:.4f}{aside}",
    )


def _group_rules(subgroups: dict[str, Any] | None, cfg: GateConfig) -> list[Rule]:
    if not subgroups or not subgroups.get("groupings"):
        return [Rule("group_recall", None, cfg.min_group_recall, True, "no subgroup column known: not gated")]
    return [_group_rule(g, rows, cfg) for g, rows in subgroups["groupings"].items()]


def _baseline_rule(challenger: dict[str, Any], baseline: dict[str, Any] | None, cfg: GateConfig) -> Rule:
    name, need = "beats_baseline", cfg.min_gain_vs_baseline
    if baseline is None:
        return Rule(name, None, need, False, "no baseline metrics: the CNN must be compared with the classic baseline")
    if baseline.get("n") is not None and baseline["n"] != challenger["n"]:
        return Rule(
            name,
            None,
            need,
            False,
            f"baseline scored on {baseline['n']} test samples, the challenger "
            f"on {challenger['n']}: not the same test split",
        )
    gain = challenger["macro_f1"] - baseline["macro_f1"]
    ok = gain >= need
    return Rule(
        name,
        gain,
        need,
        ok,
        f"macro-F1 {challenger['macro_f1']:.4f} − baseline {baseline['macro_f1']:.4f} "
        f"= {gain:+.4f} {'≥' if ok else '<'} {need:+.4f}",
    )


def _champion_rule(
    challenger: dict[str, Any], champion: dict[str, Any] | None, cfg: GateConfig, diff_ci: Sequence[float] | None
) -> Rule:
    name, floor = "non_inferior_to_champion", -cfg.max_drop_vs_champion
    if champion is None:
        return Rule(name, None, None, True, "no champion yet: first model")
    diff = challenger["macro_f1"] - champion["macro_f1"]
    if diff_ci is None:
        ok = diff >= floor
        return Rule(
            name,
            diff,
            floor,
            ok,
            f"macro-F1 {challenger['macro_f1']:.4f} − champion "
            f"{champion['macro_f1']:.4f} = {diff:+.4f} {'≥' if ok else '<'} "
            f"{floor:+.4f} (point difference, no bootstrap interval)",
        )
    low, high = float(diff_ci[0]), float(diff_ci[1])
    interval = f"macro-F1 difference {diff:+.4f}, paired patient-bootstrap CI [{low:+.4f}, {high:+.4f}]"
    if cfg.margin_rule == "fixed":
        ok = low >= floor
        return Rule(name, low, floor, ok, f"{interval}: lower bound {'≥' if ok else '<'} {floor:+.4f}")
    half = (high - low) / 2.0
    margin = -max(cfg.max_drop_vs_champion, half)
    if diff < floor:
        return Rule(
            name,
            low,
            margin,
            False,
            f"{interval}: the challenger scores {-diff:.4f} below the champion, "
            f"more than the {cfg.max_drop_vs_champion:.4f} margin",
        )
    ok = low >= margin
    why = (
        f"margin {cfg.max_drop_vs_champion:.4f}"
        if half <= cfg.max_drop_vs_champion
        else f"margin = the test set's resolution ±{half:.4f} (wider than {cfg.max_drop_vs_champion:.4f}: "
        "a smaller drop cannot be shown on this test set)"
    )
    return Rule(name, low, margin, ok, f"{interval}: lower bound {'≥' if ok else '<'} {margin:+.4f}, {why}")


def _switch(name: str, required: bool, ok: bool, value: float | None, threshold: float | None, reason: str) -> Rule:
    if not required:
        return Rule(name, value, threshold, True, f"not required by the gate config ({reason})")
    return Rule(name, value, threshold, ok, reason)


def _validation_rule(validation_passed: bool | None, cfg: GateConfig) -> Rule:
    reason = (
        "validation report missing"
        if validation_passed is None
        else f"validate_annotations {'passed' if validation_passed else 'failed'}"
    )
    return _switch(
        "validation_passed",
        cfg.require_validation_passed,
        bool(validation_passed),
        None if validation_passed is None else float(validation_passed),
        1.0,
        reason,
    )


def _leak_rule(leak_patients: Sequence[str], cfg: GateConfig) -> Rule:
    leaks = sorted(leak_patients)
    reason = (
        f"{len(leaks)} test patient(s) also in train/val: {leaks[:5]}{' …' if len(leaks) > 5 else ''}"
        if leaks
        else "no test patient appears in train or val"
    )
    return _switch("no_patient_leak", cfg.require_no_patient_leak, not leaks, float(len(leaks)), 0.0, reason)


def decide(
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    cfg: GateConfig,
    *,
    baseline: dict[str, Any] | None = None,
    validation_passed: bool | None = None,
    leak_patients: Sequence[str] = (),
    diff_ci: Sequence[float] | None = None,
    test_resolution: dict[str, Any] | None = None,
    subgroups: dict[str, Any] | None = None,
) -> Decision:
    """Apply every rule; the gate passes only if all pass (fail hard by default).

    `challenger`/`champion`/`baseline` are `classification_metrics` dicts on the same test split;
    `diff_ci` is the paired bootstrap interval of challenger − champion macro-F1; `subgroups` is
    subgroups.py's table (per grouping, one row per group with `n_patients` and `worst_recall`).
    """
    rules = [
        Rule(
            "min_test_samples",
            challenger["n"],
            cfg.min_test_samples,
            challenger["n"] >= cfg.min_test_samples,
            f"{challenger['n']} test samples (need {cfg.min_test_samples})",
        ),
        _floor("min_accuracy", challenger["accuracy"], cfg.min_accuracy),
        _floor("min_macro_f1", challenger["macro_f1"], cfg.min_macro_f1),
        *_recall_rules(challenger, cfg),
        *_group_rules(subgroups, cfg),
        _baseline_rule(challenger, baseline, cfg),
        _champion_rule(challenger, champion, cfg, diff_ci),
        _validation_rule(validation_passed, cfg),
        _leak_rule(leak_patients, cfg),
    ]
    return Decision(all(r.passed for r in rules), tuple(rules), test_resolution)
