"""Patch datasets as in-memory uint8 tensors: patches are small, so decode once and train fast.

`loader.py` turns these into batches on the training device (and reads files per batch when a
dataset does not fit in memory); components/common/preprocessing.py normalises them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from components.common.errors import DataError


@dataclass(frozen=True)
class PatchSet:
    images: torch.Tensor  # N×3×H×W uint8
    labels: torch.Tensor  # N int64
    patients: tuple[str, ...]
    units: tuple[str, ...]  # each row's bootstrap unit (see `units`)


def split_table(patch_dir: Path, split: str, classes: tuple[str, ...]) -> tuple[pd.DataFrame, torch.Tensor]:
    """Rows of one split of `patches.parquet` (sorted by path: a stable order) and their label indices."""
    table = patch_dir / "patches.parquet"
    if not table.is_file():
        raise DataError(table, "patch table not found; run crop_patches first")
    frame = pd.read_parquet(table)
    frame = frame[frame.split == split].sort_values("patch_path").reset_index(drop=True)
    if split != "train" and "augment" in frame.columns and (frame.augment != "none").any():
        raise DataError(
            table,
            f"the {split} split holds augmented copies: a lesion counted several times "
            "would bias its metrics; balance only train (crop_patches.balance.splits)",
        )
    unknown = set(frame.label) - set(classes)
    if unknown:
        raise DataError(table, f"labels {sorted(unknown)} are not in task.classes {list(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    return frame, torch.tensor([index[c] for c in frame.label], dtype=torch.int64)


def units(frame: pd.DataFrame) -> tuple[str, ...]:
    """Each row's bootstrap resampling unit: its split group (patients joined by byte copies and
    near-duplicates), or its patient on tables from before split groups existed."""
    column = "split_group" if "split_group" in frame.columns else "patient_id"
    return tuple(frame[column].astype(str))


def decode_patch(path: Path, size: int) -> np.ndarray:
    """One patch file → H×W×3 uint8 at `size` (bilinear, as at inference)."""
    with Image.open(path) as opened:
        img = opened.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.array(img)  # a writable copy: torch.from_numpy warns on read-only buffers


def load_split(patch_dir: Path, split: str, classes: tuple[str, ...], size: int) -> PatchSet:
    """Load one split of `patches.parquet`, resized to `size`, labels indexed by `classes`."""
    frame, labels = split_table(patch_dir, split, classes)
    images = torch.empty(len(frame), 3, size, size, dtype=torch.uint8)
    for i, rel in enumerate(frame.patch_path):  # straight into the tensor: no list of arrays + stack copy
        images[i] = torch.from_numpy(decode_patch(patch_dir / "patches" / rel, size)).permute(2, 0, 1)
    return PatchSet(images, labels, tuple(frame.patient_id.astype(str)), units(frame))
