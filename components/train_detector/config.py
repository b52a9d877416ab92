"""The `train_detector` section of params.yaml: the detector's architecture and its training."""

from __future__ import annotations

from dataclasses import dataclass

from components.common.errors import ConfigError

# arch → (backbone name, most trainable backbone layers)
ARCHS = {
    "fasterrcnn_mobilenet_v3_large_fpn": ("mobilenet_v3_large", 6),
    "fasterrcnn_resnet50_fpn": ("resnet50", 5),
    "fasterrcnn_resnet101_fpn": ("resnet101", 5),
}


@dataclass(frozen=True)
class DetectorConfig:
    """The `train_detector` section of params.yaml."""

    arch: str = "fasterrcnn_mobilenet_v3_large_fpn"
    epochs: int = 12
    batch_size: int = 4
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    patience: int = 4
    min_delta: float = 0.002
    min_size: int = 320
    max_size: int = 480
    trainable_backbone_layers: int = 3  # only with pretrained_path: from scratch every layer trains
    pretrained_path: str | None = None  # local file or s3:// URI holding a state_dict
    score_threshold: float = 0.05
    seed: int = 42
    device: str = "auto"
    threads: int = 0
    # RPN anchors in pixels of the resized image; None = torchvision's (32 … 512). Small objects (seed
    # 000's 8–20 px acupoints) need smaller ones. ResNet FPN: exactly 5, one per pyramid level.
    anchor_sizes: tuple[int, ...] | None = None
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)

    def __post_init__(self) -> None:
        if self.anchor_sizes is not None:  # YAML gives lists; the frozen config keeps tuples
            object.__setattr__(self, "anchor_sizes", tuple(int(a) for a in self.anchor_sizes))
        object.__setattr__(self, "aspect_ratios", tuple(float(r) for r in self.aspect_ratios))
        self._check_anchors()
        if self.arch not in ARCHS:
            raise ConfigError(f"train_detector.arch: unknown {self.arch!r}; choose from {sorted(ARCHS)}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"train_detector.optimizer: 'sgd' or 'adamw', found {self.optimizer!r}")
        if not 0 <= self.trainable_backbone_layers <= ARCHS[self.arch][1]:
            raise ConfigError(
                f"train_detector.trainable_backbone_layers: 0..{ARCHS[self.arch][1]} for "
                f"{self.arch}, found {self.trainable_backbone_layers}"
            )
        if self.epochs < 1 or self.batch_size < 1 or not 0 < self.min_size <= self.max_size:
            raise ConfigError("train_detector: need epochs ≥ 1, batch_size ≥ 1 and 0 < min_size ≤ max_size")

    def _check_anchors(self) -> None:
        sizes, ratios = self.anchor_sizes, self.aspect_ratios
        if sizes is not None and (not sizes or min(sizes) < 1 or list(sizes) != sorted(set(sizes))):
            raise ConfigError(f"train_detector.anchor_sizes: increasing positive pixel sizes, found {list(sizes)}")
        if sizes is not None and self.arch != "fasterrcnn_mobilenet_v3_large_fpn" and len(sizes) != 5:
            raise ConfigError(
                f"train_detector.anchor_sizes: {self.arch} has 5 FPN levels, one size each; "
                f"found {len(sizes)} sizes {list(sizes)}"
            )
        if not ratios or min(ratios) <= 0:
            raise ConfigError(f"train_detector.aspect_ratios: positive height/width ratios, found {list(ratios)}")
