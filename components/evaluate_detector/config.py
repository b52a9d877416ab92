"""The `evaluate_detector` section of params.yaml, with its gate."""

from __future__ import annotations

from dataclasses import dataclass, field

from components.common.errors import ConfigError
from components.evaluate_detector.gate import DetectorGateConfig


@dataclass(frozen=True)
class EvaluateDetectorConfig:
    """The `evaluate_detector` section of params.yaml."""

    champion_alias: str = "champion"
    iou_threshold: float = 0.5  # the gate's mAP is VOC mAP at this IoU
    gate: DetectorGateConfig = field(default_factory=DetectorGateConfig)

    def __post_init__(self) -> None:
        if not 0 < self.iou_threshold < 1:
            raise ConfigError(f"evaluate_detector.iou_threshold: in (0, 1), found {self.iou_threshold}")
