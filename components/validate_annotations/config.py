"""The `validate_annotations` section of params.yaml: every threshold and tolerance of the checks."""

from __future__ import annotations

from dataclasses import dataclass

from components.common.errors import ConfigError


@dataclass(frozen=True)
class ValidateConfig:
    """Thresholds of the checks; a value that cannot work is refused before any data is read."""

    # Boxes up to this far outside the image are clipped (BOX_CLIPPED); further is BOX_OUT_OF_BOUNDS.
    border_tolerance_px: float = 1.0
    min_box_side_px: float = 4.0
    # Ctrl+D-then-nudge duplicates: same class and IoU at or above this.
    near_duplicate_iou: float = 0.9
    # A box covering more than this share of its image is almost always a mis-drag.
    max_box_area_fraction: float = 0.95
    # Robust z-score (median/MAD) of log box area within its class above which a box is an outlier.
    box_size_outlier_z: float = 4.0
    box_size_outlier_min_boxes: int = 20
    # Perceptual-hash Hamming distance (of 64 bits) at or below which two images are near-duplicates.
    near_duplicate_phash_distance: int = 4
    min_boxes_per_class: int = 10
    # Largest class count / smallest class count above which the dataset is reported as imbalanced.
    max_class_imbalance: float = 10.0
    # The stage fails (rather than train on scraps) if more than this share of images is quarantined.
    max_quarantine_fraction: float = 0.2
    # ... or if more than this share of the boxes of accepted images is dropped (box-level errors), so
    # a taxonomy mismatch (every label unknown) fails loudly instead of training on nothing.
    max_dropped_box_fraction: float = 0.2
    # An image that lost a box (box-level error) still gives its other patches; the detector export
    # leaves it out unless this is true (its missing object would be learned as background).
    detection_keep_partial: bool = False
    require_annotation: bool = True
    log_to_mlflow: bool = True
    # A Great Expectations project folder kept between runs (suites, validation results, Data Docs
    # with every run's history); None: a throw-away project per run (only this run's Data Docs).
    gx_project: str | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.border_tolerance_px >= 0, "border_tolerance_px must be >= 0"),
            (self.min_box_side_px >= 0, "min_box_side_px must be >= 0"),
            (0 < self.near_duplicate_iou <= 1, "near_duplicate_iou must be in (0, 1]"),
            (0 < self.max_box_area_fraction <= 1, "max_box_area_fraction must be in (0, 1]"),
            (self.box_size_outlier_z > 0, "box_size_outlier_z must be > 0"),
            (self.box_size_outlier_min_boxes >= 3, "box_size_outlier_min_boxes must be >= 3"),
            (0 <= self.near_duplicate_phash_distance <= 64, "near_duplicate_phash_distance must be in [0, 64]"),
            (self.min_boxes_per_class >= 0, "min_boxes_per_class must be >= 0"),
            (self.max_class_imbalance >= 1, "max_class_imbalance must be >= 1"),
            (0 <= self.max_quarantine_fraction <= 1, "max_quarantine_fraction must be in [0, 1]"),
            (0 <= self.max_dropped_box_fraction <= 1, "max_dropped_box_fraction must be in [0, 1]"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ConfigError(f"validate_annotations: {problem}")
