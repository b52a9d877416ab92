"""The `crop_patches` section of params.yaml as one frozen config, checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass, field

from components.common.errors import ConfigError
from components.common.params import params_hash
from components.crop_patches.balance import BalanceConfig
from components.crop_patches.detection import DetectionConfig
from components.crop_patches.geometry import EDGES, FITS, SHAPES
from components.crop_patches.kfold import KFoldConfig
from components.crop_patches.split import SplitConfig


@dataclass(frozen=True)
class CropConfig:
    """How boxes become patches, and how patches become a balanced, split dataset."""

    patch_size: int = 64
    context_margin: float = 0.1  # fraction of the box side added on each side
    shape: str = "square"  # square | keep_aspect (letterboxed into the square patch)
    edge: str = "shift"  # shift | reflect | constant: windows that overhang the image
    pad_value: int = 0  # grey level of constant padding and letterbox bars
    min_box_side: int = 4  # boxes thinner than this (pixels) are skipped and listed in the report
    orientation: str = "upright"  # upright: apply EXIF orientation to the patch; stored: as labelImg showed it
    whole_image: str = "letterbox"  # whole-image tasks: letterbox | center_crop
    reduced_decode: bool = True  # decode JPEGs at 1/2–1/8 scale when the patch is much smaller than the box
    image_format: str = "jpg"
    jpeg_quality: int = 92
    workers: int = 0  # 0 = one process per CPU core
    contact_sheet_per_class: int = 8
    split: SplitConfig = field(default_factory=SplitConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    kfold: KFoldConfig = field(default_factory=KFoldConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.patch_size >= 8, "patch_size", "≥ 8", self.patch_size),
            (0 <= self.context_margin <= 2, "context_margin", "between 0 and 2", self.context_margin),
            (self.shape in SHAPES, "shape", f"one of {list(SHAPES)}", self.shape),
            (self.edge in EDGES, "edge", f"one of {list(EDGES)}", self.edge),
            (0 <= self.pad_value <= 255, "pad_value", "0..255", self.pad_value),
            (self.min_box_side >= 1, "min_box_side", "≥ 1", self.min_box_side),
            (self.orientation in ("upright", "stored"), "orientation", "'upright' or 'stored'", self.orientation),
            (self.whole_image in FITS, "whole_image", f"one of {list(FITS)}", self.whole_image),
            (self.image_format in ("jpg", "png"), "image_format", "'jpg' or 'png'", self.image_format),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality", "1..100", self.jpeg_quality),
            (self.workers >= 0, "workers", "≥ 0", self.workers),
            (self.contact_sheet_per_class >= 0, "contact_sheet_per_class", "≥ 0", self.contact_sheet_per_class),
        ]
        for ok, name, expected, found in checks:
            if not ok:
                raise ConfigError(f"crop_patches.{name}: expected {expected}, found {found!r}")

    def pixel_hash(self) -> str:
        """Hash of exactly the settings that change a patch's pixels (the incremental cache key).

        Split, balance, k-fold and export settings are left out on purpose: changing them
        re-labels or re-selects patches but must not re-crop a single one.
        """
        return params_hash(
            {
                k: getattr(self, k)
                for k in (
                    "patch_size",
                    "context_margin",
                    "shape",
                    "edge",
                    "pad_value",
                    "orientation",
                    "whole_image",
                    "reduced_decode",
                    "image_format",
                    "jpeg_quality",
                )
            }
        )
