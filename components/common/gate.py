"""What every promotion gate returns: one rule per check, each with value, threshold, verdict and
reason, so decision.json says exactly why a model was or was not promoted (classifier and detector)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rule:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    reason: str

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"


@dataclass(frozen=True)
class Decision:
    passed: bool
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    resolution: dict[str, Any] | None = None  # what the test set can resolve (evaluate_model.gate)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rules": [{**asdict(r), "verdict": r.verdict} for r in self.rules],
            "failed": [r.name for r in self.rules if not r.passed],
            "resolution": self.resolution,
        }
