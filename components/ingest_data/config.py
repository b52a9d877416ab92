"""The `ingest_data` section of params.yaml as one frozen config, checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass, field

from components.common.errors import ConfigError
from components.common.images import DECODE_MODES, IMAGE_EXTENSIONS
from components.common.params import params_hash
from components.common.sources import ZipLimits

ROWS_VERSION = 3  # bump when a stored field is added or changes meaning: old rows are then not reused
# (3: grey_pixels; draft JPEGs hashed from at least PHASH_MIN_SIDE px)
LAYOUTS = ("auto", "folder_per_class")


@dataclass(frozen=True)
class IngestConfig:
    """The `ingest_data` section of params.yaml."""

    metadata_file: str = "metadata.csv"
    image_extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    # Used when metadata.csv has no row for an image: a regex whose group `patient` is the id.
    patient_pattern: str | None = None
    layout: str = "auto"
    max_image_pixels: int = 100_000_000
    zip: ZipLimits = field(default_factory=ZipLimits)
    cache_dir: str = ".cache/lesionops/sources"  # s3:// endpoint/region/credentials: standard AWS env/config only
    # full: decode every pixel; draft: JPEGs at 1/8 scale (still reads every byte: truncation caught,
    # perceptual hash kept) at a fraction of the cost; header: header + sha256 only, so corrupt
    # pixels and near-duplicates are NOT checked (validation says so with DECODE_SKIPPED).
    decode: str = "draft"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"ingest_data.layout: expected one of {list(LAYOUTS)}, found {self.layout!r}")
        if self.max_image_pixels < 1:
            raise ConfigError(f"ingest_data.max_image_pixels: must be positive, found {self.max_image_pixels}")
        if self.decode not in DECODE_MODES:
            raise ConfigError(f"ingest_data.decode: expected one of {list(DECODE_MODES)}, found {self.decode!r}")

    def rows_hash(self) -> str:
        """Only the settings that change what a file's row says decide whether rows are reused
        (`decode` does: header rows lack the decode check and phash, so switching re-reads all)."""
        return params_hash(ROWS_VERSION, self.layout, self.max_image_pixels, self.decode)
