"""Patch datasets as in-memory uint8 tensors: patches are small, so decode once and train fast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from components.common.errors import DataError

# Normalisation is part of the model contract: saved with the model and logged to MLflow.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PatchSet:
    images: torch.Tensor  # N×3×H×W uint8
    labels: torch.Tensor  # N int64
    patients: tuple[str, ...]


def load_split(patch_dir: Path, split: str, classes: tuple[str, ...], size: int) -> PatchSet:
    """Load one split of `patches.parquet`, resized to `size`, labels indexed by `classes`."""
    table = patch_dir / "patches.parquet"
    if not table.is_file():
        raise DataError(table, "patch table not found; run crop_patches first")
    frame = pd.read_parquet(table)
    frame = frame[frame.split == split].sort_values("patch_path")
    unknown = set(frame.label) - set(classes)
    if unknown:
        raise DataError(table, f"labels {sorted(unknown)} are not in task.classes {list(classes)}")
    arrays = []
    for rel in frame.patch_path:
        with Image.open(patch_dir / "patches" / rel) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(img))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous() if arrays \
        else torch.empty(0, 3, size, size, dtype=torch.uint8)
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[c] for c in frame.label], dtype=torch.int64)
    return PatchSet(images, labels, tuple(frame.patient_id.astype(str)))


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×H×W → float, normalised with the model's mean/std."""
    mean = torch.tensor(MEAN, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=batch.device).view(1, 3, 1, 1)
    return (batch.float() / 255.0 - mean) / std


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Lesions have no canonical orientation: random flips and 90° turns per batch, seeded."""
    if torch.rand(1, generator=generator).item() < 0.5:
        batch = batch.flip(3)
    if torch.rand(1, generator=generator).item() < 0.5:
        batch = batch.flip(2)
    k = int(torch.randint(0, 4, (1,), generator=generator).item())
    return torch.rot90(batch, k, dims=(2, 3)) if k else batch
