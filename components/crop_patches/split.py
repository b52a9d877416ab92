"""Grouped splits that stay put when the dataset grows.

The unit is the split group (validate_annotations: a patient joined with every byte copy and
near-duplicate of its photos; tables without the column fall back to the patient). A group's split
is a pure function of its id and a salt, so adding patients never moves an existing one (a test
patient never silently becomes a training patient between data versions) — unless a new photo
joins two groups, which is the point: then they must share a split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from components.common.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.6
    val: float = 0.2
    test: float = 0.2
    salt: str = "lesionops-v1"
    # A split group joining several patients that holds more than this share of the images is
    # reported (a near-duplicate chain can swallow a dataset into one split).
    max_group_fraction: float = 0.05

    def __post_init__(self) -> None:
        fractions = (self.train, self.val, self.test)
        if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ConfigError(f"crop_patches.split: fractions must be ≥ 0 and sum to 1, found {fractions}")
        if not 0 < self.max_group_fraction <= 1:
            raise ConfigError(
                f"crop_patches.split.max_group_fraction: must be in (0, 1], found {self.max_group_fraction}"
            )


def unit_hash(patient_id: str, salt: str) -> float:
    """Map (salt, patient) to [0, 1) uniformly and reproducibly across machines and Python versions."""
    digest = hashlib.sha256(f"{salt}\x00{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(patient_id: str, cfg: SplitConfig) -> str:
    u = unit_hash(patient_id, cfg.salt)
    if u < cfg.train:
        return "train"
    return "val" if u < cfg.train + cfg.val else "test"


def thin_classes(crops: pd.DataFrame, cfg: SplitConfig, classes: tuple[str, ...]) -> list[str]:
    """Warnings for classes that a split with a non-zero share got no patient of.

    Hash splits are class-stratified only in expectation (exact stratification would need to look
    at other patients, and then adding a patient could move an existing one); with few patients
    per class a split can miss a class, and a per-class metric on it would be meaningless.
    """
    warnings = []
    for split in SPLITS:
        if getattr(cfg, split) == 0:
            continue
        present = set(crops.loc[crops.split == split, "label"])
        missing = [c for c in classes if c not in present and c in set(crops.label)]
        if missing:
            warnings.append(
                f"split {split!r} has no patient with class(es) {missing}; "
                "add patients or change crop_patches.split.salt"
            )
    return warnings


def check_no_leak(frame: pd.DataFrame, where: str) -> None:
    """Fail if any patient, or any split group (byte copies, near-duplicates), appears in more than
    one split (the error names them)."""
    for column, what in (("patient_id", "patient"), ("split_group", "split group")):
        if column not in frame.columns:
            continue
        per_unit = frame.groupby(column)["split"].nunique()
        leaked = per_unit[per_unit > 1].index.tolist()
        if leaked:
            raise DataError(where, f"{what} leak across splits for {len(leaked)} {what}(s): {leaked[:5]}")
