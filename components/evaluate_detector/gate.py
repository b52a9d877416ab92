"""The detector's promotion gate: a pure function from test metrics to a decision, rule by rule.

Same shape as the classifier's gate (components.common.gate's Rule/Decision): an absolute mAP floor, a minimum
test size, and non-inferiority against the champion measured on the same test split, where
"no champion yet" is a recorded, passing outcome rather than a skipped rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.common.gate import Decision, Rule


@dataclass(frozen=True)
class DetectorGateConfig:
    """The `evaluate_detector.gate` section of params.yaml."""

    min_map50: float = 0.1
    max_drop_vs_champion: float = 0.02  # non-inferiority margin on mAP
    min_test_images: int = 10


def _iou(metrics: dict[str, Any]) -> str:
    return f"{float(metrics.get('iou_threshold', 0.5)):.2f}"


def _floor(challenger: dict[str, Any], cfg: DetectorGateConfig) -> Rule:
    value = challenger["map50"]
    if value is None:
        return Rule("min_map50", None, cfg.min_map50, False, "no test boxes: mAP is undefined")
    ok = value >= cfg.min_map50
    return Rule(
        "min_map50",
        value,
        cfg.min_map50,
        ok,
        f"VOC mAP@{_iou(challenger)} {value:.4f} {'≥' if ok else '<'} {cfg.min_map50:.4f}",
    )


def _champion_rule(challenger: dict[str, Any], champion: dict[str, Any] | None, cfg: DetectorGateConfig) -> Rule:
    if champion is None:
        return Rule("non_inferior_to_champion", None, None, True, "no champion yet: first detector")
    if challenger["map50"] is None or champion["map50"] is None:
        return Rule(
            "non_inferior_to_champion",
            challenger["map50"],
            None,
            False,
            "no test boxes: the detectors cannot be compared",
        )
    floor = champion["map50"] - cfg.max_drop_vs_champion
    ok = challenger["map50"] >= floor
    return Rule(
        "non_inferior_to_champion",
        challenger["map50"],
        floor,
        ok,
        f"mAP@{_iou(challenger)} {challenger['map50']:.4f} vs champion {champion['map50']:.4f} "
        f"(allowed drop {cfg.max_drop_vs_champion:.4f})",
    )


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None, cfg: DetectorGateConfig) -> Decision:
    """`challenger`/`champion`: {"map50": mAP at the evaluation IoU or None, "n_images": int,
    optionally "iou_threshold"}. The gate passes only if every rule passes."""
    n = int(challenger["n_images"])
    rules = (
        Rule(
            "min_test_images",
            n,
            cfg.min_test_images,
            n >= cfg.min_test_images,
            f"{n} test images (need {cfg.min_test_images})",
        ),
        _floor(challenger, cfg),
        _champion_rule(challenger, champion, cfg),
    )
    return Decision(all(r.passed for r in rules), rules)
