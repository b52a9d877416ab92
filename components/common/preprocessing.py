"""Input normalisation: the one function every place that feeds a classifier uses.

A patch becomes a tensor in training (train_model's loop), validation, k-fold, evaluation (the
challenger and the champion), the drift reference's embeddings and serving. All of them call
`normalize` with the `Normalization` the model was trained with, so a model never sees pixels
scaled differently from the ones it learned on (tests/serve/test_preprocessing.py holds serving
to 1e-5 of the training path).

The statistics are the training patches' own per-channel mean and standard deviation
(`channel_stats`), not ImageNet's: microscopy, X-rays and skin photos are far from ImageNet's
colour distribution (a grey brightfield set has all three channels equal and a std ~3× smaller),
and a network trained from scratch learns fastest on inputs centred and scaled to ~unit variance.
They are stored with the model: in `checkpoint.pt` and in the run's `preprocessing.json`
(`mean`, `std`), which evaluation and serving read back. Models logged before this existed
carry ImageNet's values in their `preprocessing.json` and keep them (`IMAGENET`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from components.common.device import to_device

# What train_model used for every model before the statistics were measured (and what an
# ImageNet-pretrained backbone was trained with): the fallback for files that name no statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_STD = 1e-3  # a constant channel (a blank set) must not divide by zero


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of [0, 1]-scaled RGB pixels."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def as_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Normalization:
        """From a `preprocessing.json` / checkpoint mapping; ImageNet's values when it names none
        (models trained before the statistics were measured were normalised with those)."""
        if not values or "mean" not in values or "std" not in values:
            return cls()
        mean, std = (tuple(float(v) for v in values[k]) for k in ("mean", "std"))
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"expected 3 means and 3 positive stds, found mean={mean} std={std}")
        return cls((mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))


IMAGENET = Normalization()


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> Normalization:
    """Per-channel mean/std of a uint8 N×3×H×W tensor (the training patches, un-augmented).

    Summed in float64 chunk by chunk: exact enough to be identical across runs and thread counts
    (a resumed run recomputes the same numbers), and no float copy of the whole set is made."""
    if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError(f"expected a non-empty N×3×H×W batch, found shape {tuple(images.shape)}")
    total = torch.zeros(3, dtype=torch.float64, device=images.device)  # a split may live on the GPU
    squares = torch.zeros(3, dtype=torch.float64, device=images.device)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64)
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    std = (squares / n - mean * mean).clamp(min=0).sqrt()
    mean, std = mean / 255.0, (std / 255.0).clamp(min=MIN_STD)
    m, s = (tuple(round(float(v), 6) for v in t) for t in (mean, std))
    return Normalization((m[0], m[1], m[2]), (s[0], s[1], s[2]))


def normalize(batch: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """uint8 (or 0–255 float) N×3×H×W → float32, scaled to [0, 1] and standardised per channel.

    The memory format is kept (channels-last batches stay channels-last on CUDA)."""
    mean, std = to_device(torch.tensor((norm.mean, norm.std), dtype=torch.float32), batch.device).view(2, 1, 3, 1, 1)
    return (batch.float() / 255.0 - mean) / std
