"""The champion rule at the test set's resolution (evaluate_model/gate.py's module doc), both ways.

The rule's cases one by one, then the rule run through the real patient bootstrap on simulated test
sets the size of the demo's (35 patients, ~230 patches, 5 classes): a challenger 7 accuracy points
better is promoted (the fixed 0.02 margin refused close to half of such retrains: the reason for the
rule), one 10 points worse never is, and one that scores worse than the champion by more than the margin on
the shared test set is refused whatever its interval.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from components.common.bootstrap import BootstrapConfig, confidence_intervals, paired_difference, patient_counts
from components.common.metrics import classification_metrics
from components.evaluate_model.gate import GateConfig, decide, resolution

GATE = GateConfig(
    min_accuracy=0.0,
    min_macro_f1=0.0,
    min_class_recall=0.0,
    min_test_samples=1,
    min_gain_vs_baseline=-1.0,
    max_drop_vs_champion=0.02,
    margin_rule="resolution",
)
CLASSES = ("lichen_planus", "parapsoriasis", "lupus_erythematosus", "eczema", "psoriasis")
MIX = (0.05, 0.2, 0.18, 0.1, 0.47)  # the demo test split's class shares


def _metrics(f1: float) -> dict:
    return {"accuracy": f1, "macro_f1": f1, "n": 230, "per_class": {"c": {"recall": f1, "support": 10}}}


def _rule(challenger_f1: float, champion_f1: float, ci: tuple[float, float], cfg: GateConfig = GATE):
    decision = decide(
        _metrics(challenger_f1),
        _metrics(champion_f1),
        cfg,
        baseline={"macro_f1": 0.0},
        validation_passed=True,
        diff_ci=ci,
    )
    return next(r for r in decision.rules if r.name == "non_inferior_to_champion")


@pytest.mark.parametrize(
    ("diff", "ci", "passes"),
    [
        (+0.054, (-0.030, +0.140), True),  # the retrain: 5.4 points better, CI wider than the margin
        (+0.000, (-0.060, +0.060), True),  # a tie the test set cannot resolve: swapping is harmless
        (-0.010, (-0.080, +0.060), False),  # the interval's centre is below zero
        (-0.030, (-0.040, -0.020), False),  # observed worse than the margin: never, however narrow
        (-0.030, (-0.200, +0.300), False),  # ... or however wide
        (+0.010, (-0.005, +0.025), True),  # a test set finer than the margin: the classic rule
        (-0.015, (-0.030, +0.000), False),  # ... lower bound past −0.02
    ],
)
def test_resolution_rule_cases(diff: float, ci: tuple[float, float], passes: bool) -> None:
    r = _rule(0.7 + diff, 0.7, ci)
    assert r.passed is passes, r.reason
    assert r.threshold == pytest.approx(-max(0.02, (ci[1] - ci[0]) / 2))


def test_fixed_rule_is_the_classic_non_inferiority() -> None:
    fixed = replace(GATE, margin_rule="fixed")
    assert not _rule(0.754, 0.7, (-0.03, 0.14), fixed).passed  # the refusal the issue reported
    assert _rule(0.7, 0.7, (-0.015, 0.02), fixed).passed


def test_decision_states_the_resolution() -> None:
    stated = resolution((-0.06, 0.08), (0.6, 0.8), 35, 232, 0.95)
    assert stated["macro_f1"] == pytest.approx(0.07) and stated["basis"] == "paired challenger − champion"
    assert "35 patients" in stated["statement"] and "±0.070" in stated["statement"]
    alone = resolution(None, (0.6, 0.8), 35, 232, 0.95)
    assert alone["macro_f1"] == pytest.approx(0.1) and alone["basis"] == "challenger alone"
    decision = decide(
        _metrics(0.7), None, GATE, baseline={"macro_f1": 0.0}, validation_passed=True, test_resolution=alone
    )
    assert decision.as_dict()["resolution"] == alone


def _test_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """~230 patches of 35 patients (1-12 each), labels drawn with the demo's class mix."""
    sizes = rng.integers(1, 13, 35)
    patients = np.repeat(np.arange(35), sizes)
    return rng.choice(len(CLASSES), len(patients), p=MIX), patients


def _predictions(
    y: np.ndarray, patients: np.ndarray, accuracy: float, shared: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Right with probability `accuracy`, on difficulty shared with the other model (two retrains
    agree on most patches) plus a per-patient offset (a patient's photos are hard together)."""
    offset = rng.normal(0, 0.1, patients.max() + 1)[patients]
    own = np.where(rng.random(len(y)) < 0.8, shared, rng.random(len(y)))
    right = own + offset < accuracy
    wrong = (y + rng.integers(1, len(CLASSES), len(y))) % len(CLASSES)
    return np.where(right, y, wrong)


def _promotions(champion_acc: float, challenger_acc: float, draws: int, cfg: GateConfig) -> tuple[int, int]:
    """(promotions, draws where the challenger scored worse than champion − margin) over `draws`
    simulated test sets, each judged with the real patient bootstrap."""
    rng, boot_cfg = np.random.default_rng(0), BootstrapConfig(n_resamples=500, seed=0)
    promoted = observed_worse = 0
    for _ in range(draws):
        y, patients = _test_set(rng)
        shared = rng.random(len(y))
        champ = _predictions(y, patients, champion_acc, shared, rng)
        chal = _predictions(y, patients, challenger_acc, shared, rng)
        boot = patient_counts([str(p) for p in patients], boot_cfg)
        ci = paired_difference(y, chal, champ, *boot, len(CLASSES), 0.95)
        m_chal, m_champ = (classification_metrics(y, p, CLASSES) for p in (chal, champ))
        m_chal["ci"] = confidence_intervals(y, chal, *boot, len(CLASSES), 0.95)
        decision = decide(m_chal, m_champ, cfg, baseline={"macro_f1": 0.0}, validation_passed=True, diff_ci=ci)
        promoted += decision.passed
        if m_chal["macro_f1"] - m_champ["macro_f1"] < -cfg.max_drop_vs_champion:
            observed_worse += 1
            assert not decision.passed  # observed worse beyond the margin: refused, whatever the interval
    return promoted, observed_worse


def test_a_better_challenger_is_promoted_at_the_demo_test_size() -> None:
    promoted, _ = _promotions(champion_acc=0.70, challenger_acc=0.77, draws=40, cfg=GATE)
    refused_by_fixed = 40 - _promotions(0.70, 0.77, 40, replace(GATE, margin_rule="fixed"))[0]
    assert promoted >= 34  # measured 37 of 40
    assert refused_by_fixed >= 14  # measured 18 of 40: what the fixed 0.02 margin did to such retrains


def test_a_worse_challenger_is_never_promoted_at_the_demo_test_size() -> None:
    promoted, observed_worse = _promotions(champion_acc=0.80, challenger_acc=0.70, draws=40, cfg=GATE)
    assert promoted == 0 and observed_worse >= 38
