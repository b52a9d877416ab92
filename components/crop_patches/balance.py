"""Per-class balancing of the patch dataset, as seed 002 did (900 patches per class) — an option.

Off by default (`target_per_class: null`): undersampling throws labelled lesions away (on a real
microscopy set with one class 3× the other, a 250/class target discarded three quarters of the
training crops and cost the CNN 4 macro-F1 points), so train_model handles imbalance with a
class-weighted loss or a balanced sampler over every crop instead. Seed 002's balanced ES-Patch
recipe stays available for building such a dataset on purpose (tasks/es_skin.yaml says how).

Large classes are undersampled and small ones oversampled with fixed geometric augmentations.
Both are deterministic and stable: which patches are kept, and which get copies, follows a salted
hash of the patch id, so adding new crops changes the selection minimally instead of reshuffling
it (a kept patch stays kept unless a new patch outranks it). Only the splits named in the config
are balanced; val/test keep their natural class mix so the metrics describe the real data.
Nothing is dropped or left short silently: every change is counted in the report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd
from PIL import Image

from components.common.errors import ConfigError, DataError
from components.crop_patches.split import SPLITS

AUGMENTATIONS = ("hflip", "vflip", "rot90", "rot180", "rot270", "transpose")
_TRANSPOSE = {
    "hflip": Image.Transpose.FLIP_LEFT_RIGHT,
    "vflip": Image.Transpose.FLIP_TOP_BOTTOM,
    "rot90": Image.Transpose.ROTATE_90,
    "rot180": Image.Transpose.ROTATE_180,
    "rot270": Image.Transpose.ROTATE_270,
    "transpose": Image.Transpose.TRANSPOSE,
}
_REQUIRED = ("patch_id", "patch_path", "label", "split")


@dataclass(frozen=True)
class BalanceConfig:
    target_per_class: int | None = 900  # None: no balancing at all (params.yaml's default: nothing discarded)
    splits: tuple[str, ...] = ("train",)  # val/test keep their natural class mix
    undersample: bool = True
    oversample: bool = True
    augmentations: tuple[str, ...] = ("hflip", "vflip", "rot90", "rot180", "rot270")
    salt: str = "lesionops-balance-v1"
    fail_on_empty_class: bool = True

    def __post_init__(self) -> None:
        where = "crop_patches.balance"
        if self.target_per_class is not None and self.target_per_class < 1:
            raise ConfigError(f"{where}.target_per_class: must be ≥ 1 or null, found {self.target_per_class}")
        unknown = [a for a in self.augmentations if a not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"{where}.augmentations: unknown {unknown}; allowed: {list(AUGMENTATIONS)}")
        if len(set(self.augmentations)) != len(self.augmentations):
            raise ConfigError(f"{where}.augmentations: duplicates in {list(self.augmentations)}")
        bad = [s for s in self.splits if s not in SPLITS]
        if bad:
            raise ConfigError(f"{where}.splits: unknown {bad}; allowed: {list(SPLITS)}")
        if set(self.splits) - {"train"}:
            raise ConfigError(
                f"{where}.splits: only train can be balanced, found {list(self.splits)}: val/test "
                "keep their natural class mix, and a flipped copy there would count one lesion twice"
            )


def augment_patch(img: Image.Image, name: str) -> Image.Image:
    """Apply one lossless geometric augmentation (flips and right-angle rotations only)."""
    if name not in _TRANSPOSE:
        raise ValueError(f"unknown augmentation {name!r}; allowed: {list(AUGMENTATIONS)}")
    return img.transpose(_TRANSPOSE[name])


def _stable_order(frame: pd.DataFrame, salt: str) -> pd.DataFrame:
    """Order rows by sha256(salt, patch_id): independent of input order and of the other rows."""
    keys = [hashlib.sha256(f"{salt}\x00{pid}".encode()).hexdigest() for pid in frame["patch_id"]]
    return frame.assign(_key=keys).sort_values("_key", kind="stable").drop(columns="_key")


def _augmented_path(patch_path: str, aug: str) -> str:
    path = PurePosixPath(patch_path)
    return str(path.with_name(f"{path.stem}-{aug}{path.suffix}"))


def _copies(originals: pd.DataFrame, needed: int, augmentations: tuple[str, ...]) -> pd.DataFrame:
    """Round k copies every original (stable order) with augmentations[k-1] until `needed` are made."""
    rounds = []
    for aug in augmentations:
        if needed <= 0:
            break
        batch = originals.head(needed).copy()
        batch["base_patch_id"] = batch["patch_id"]
        batch["patch_id"] = batch["patch_id"] + f"-{aug}"
        batch["patch_path"] = [_augmented_path(p, aug) for p in batch["patch_path"]]
        batch["augment"] = aug
        rounds.append(batch)
        needed -= len(batch)
    return pd.concat(rounds) if rounds else originals.iloc[:0]


def _balance_class(rows: pd.DataFrame, cfg: BalanceConfig) -> pd.DataFrame:
    target = cfg.target_per_class
    assert target is not None
    n = len(rows)
    if n > target and cfg.undersample:
        return _stable_order(rows, cfg.salt).head(target)
    if 0 < n < target and cfg.oversample:
        ordered = _stable_order(rows, cfg.salt)
        return pd.concat([ordered, _copies(ordered, target - n, cfg.augmentations)])
    return rows


def _counts(frame: pd.DataFrame, splits: list[str], classes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    table = frame.groupby(["split", "label"]).size()
    return {s: {c: int(table.get((s, c), 0)) for c in classes} for s in splits}


def _check_input(crops: pd.DataFrame, classes: tuple[str, ...]) -> None:
    missing = [c for c in _REQUIRED if c not in crops.columns]
    if missing:
        raise DataError("patches", f"missing column(s) {missing} needed for balancing")
    unknown = sorted(set(crops["label"]) - set(classes))
    if unknown:
        raise DataError("patches", f"label(s) {unknown} are not in the task classes {list(classes)}")
    if crops["patch_id"].duplicated().any():
        dupes = crops.loc[crops["patch_id"].duplicated(), "patch_id"].unique().tolist()
        raise DataError("patches", f"duplicate patch_id(s) {dupes[:5]}")


def balance(crops: pd.DataFrame, classes: tuple[str, ...], cfg: BalanceConfig) -> tuple[pd.DataFrame, dict]:
    """Return the dataset downstream uses (originals + augmented copies) and a JSON-able report.

    Every output row has `augment` ("none" for originals) and `base_patch_id` (the patch whose
    pixels it transforms; itself for originals). Rows of splits not in `cfg.splits` pass unchanged.
    """
    _check_input(crops, classes)
    base = crops.assign(augment="none", base_patch_id=crops["patch_id"])
    balanced = list(cfg.splits) if cfg.target_per_class is not None else []
    parts = [base[~base["split"].isin(balanced)]]
    for split in balanced:
        for label in classes:
            rows = base[(base["split"] == split) & (base["label"] == label)]
            parts.append(_balance_class(rows, cfg))
    out = pd.concat([p for p in parts if len(p)]) if any(len(p) for p in parts) else base
    out = out.sort_values(["split", "label", "patch_id"], kind="stable").reset_index(drop=True)

    splits = list(SPLITS) + sorted(set(crops["split"]) - set(SPLITS))
    before, after = _counts(crops, splits, classes), _counts(out, splits, classes)
    target = cfg.target_per_class
    report: dict = {
        "target_per_class": target,
        "splits": balanced,
        "before": before,
        "after": after,
        "undersampled": {
            s: {c: before[s][c] - after[s][c] for c in classes if after[s][c] < before[s][c]} for s in balanced
        },
        "oversampled": {
            s: {c: after[s][c] - before[s][c] for c in classes if after[s][c] > before[s][c]} for s in balanced
        },
        "short": {s: {c: after[s][c] for c in classes if 0 < after[s][c] < (target or 0)} for s in balanced},
        "empty": {s: [c for c in classes if before[s][c] == 0] for s in splits},
    }
    return out, report


def check_empty(report: dict, cfg: BalanceConfig, where: str) -> list[str]:
    """Warn about classes with no patches; fail when one is empty in a balanced split (by default).

    An empty class cannot be oversampled, so a model trained on that split would never see it.
    """
    warnings = [f"class {c!r} has no patches in split {s}" for s, empty in report["empty"].items() for c in empty]
    if cfg.fail_on_empty_class:
        for split in report["splits"]:
            empty = report["empty"].get(split, [])
            if empty:
                raise DataError(
                    where,
                    f"class(es) {empty} have no patches in split {split}; add labelled "
                    "images for them or drop them from task.classes "
                    "(set crop_patches.balance.fail_on_empty_class: false to continue)",
                )
    return warnings
