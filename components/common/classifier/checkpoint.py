"""Checkpoints: `checkpoint.pt` (the best weights, what evaluate_model loads) and `last.pt` (the
whole training state after the latest epoch, what `--resume` continues from).

`last.pt` holds, as torchvision's references do, the model, optimizer, scheduler, grad scaler,
epoch and config — plus the best score/epoch/weights, the history and every rank's RNG states
(epoch permutation, augmentation, dropout), so that resuming after epoch k on CPU ends with exactly
the weights an uninterrupted run would have. Both files are written atomically (temp + rename):
a run killed mid-save leaves the previous file intact, which is the point of `last.pt`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from components.common.classifier.config import TrainConfig
from components.common.errors import ConfigError, DataError
from components.common.preprocessing import Normalization

CHECKPOINT = "checkpoint.pt"
LAST = "last.pt"
SUMMARY = "train_summary.json"  # what train_model tells evaluate_model (run id, model URI, sizes)
FORMAT = 1
# Settings that shape the model or the optimizer state: a resume must not change them.
FIXED_ON_RESUME = ("arch", "image_size", "optimizer", "scheduler", "freeze_layers", "seed")


def save_atomic(obj: dict[str, Any], path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def save_best(
    path: Path,
    state: dict[str, torch.Tensor],
    cfg: TrainConfig,
    classes: tuple[str, ...],
    epoch: int,
    score: float,
    norm: Normalization,
) -> Path:
    """The keys evaluate_model relies on: state_dict, config, classes, epoch, normalization (the
    mean/std the weights expect their inputs scaled with)."""
    return save_atomic(
        {
            "state_dict": state,
            "config": dataclasses.asdict(cfg),
            "classes": list(classes),
            "epoch": epoch,
            "val_macro_f1": score,
            "normalization": norm.as_dict(),
        },
        path,
    )


def rng_state(order: torch.Generator, aug: torch.Generator) -> dict[str, Any]:
    return {
        "order": order.get_state(),
        "augment": aug.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(states: list[dict[str, Any]], rank: int, order: torch.Generator, aug: torch.Generator) -> bool:
    """Restore this rank's generators; False when the checkpoint came from another world size
    (the permutation still continues; augmentation/dropout streams of new ranks start afresh)."""
    order.set_state(states[0]["order"])
    if rank >= len(states):
        return False
    mine = states[rank]
    aug.set_state(mine["augment"])
    torch.set_rng_state(mine["torch"])
    if mine["cuda"] and torch.cuda.is_available() and len(mine["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(mine["cuda"])
    return True


def load_resume(path: str, cfg: TrainConfig, classes: tuple[str, ...]) -> dict[str, Any]:
    """Read a `last.pt` and check it can continue under `cfg` (tensors only: no pickled code runs)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(file, "resume checkpoint not found (train_model.resume / --resume)")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for a bad file
        raise DataError(file, f"not a readable torch checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "optimizer" not in ckpt:
        raise DataError(file, f"not a train_model {LAST} (format {FORMAT}); {CHECKPOINT} holds weights only")
    if tuple(ckpt["classes"]) != tuple(classes):
        raise DataError(file, f"trained for classes {ckpt['classes']}, task.classes is {list(classes)}")
    for key in FIXED_ON_RESUME:
        if ckpt["config"].get(key) != getattr(cfg, key):
            raise ConfigError(
                f"train_model.{key}: {file} was trained with {ckpt['config'].get(key)!r}, "
                f"found {getattr(cfg, key)!r}; a resume must keep it"
            )
    return ckpt
