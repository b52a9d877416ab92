"""Which torch device a stage runs on: one rule for training, evaluation and serving."""

from __future__ import annotations

import torch


def pick_device(name: str) -> torch.device:
    """`auto` = CUDA when present, else the CPU; any other name is torch's own (`cuda:1`, `cpu`)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
