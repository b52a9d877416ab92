"""Train a classifier on patches with early stopping; log everything to MLflow.

The loop keeps the best-on-validation weights (macro-F1, min-delta, patience as seeds 000/003 do),
writes a resumable checkpoint, and logs the model with its signature, class list and
preprocessing so the registry entry is usable on its own.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature
from rich.progress import Progress
from torch import nn

from components.common.errors import ConfigError, DataError
from components.common.io import write_json
from components.common.metrics import classification_metrics
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, setup
from components.train_model.data import MEAN, STD, PatchSet, augment, load_split, normalize
from components.train_model.models import build_model
from components.train_model.plots import plot_curves

CHECKPOINT = "checkpoint.pt"
SUMMARY = "train_summary.json"


@dataclass(frozen=True)
class TrainConfig:
    """The `train_model` section of params.yaml."""

    arch: str = "resnet18"
    image_size: int = 64
    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    dropout: float = 0.2
    label_smoothing: float = 0.0
    class_weights: str = "none"  # none | balanced (inverse class frequency, for imbalanced data)
    scheduler: str = "cosine"  # none | cosine (annealed over `epochs`)
    patience: int = 4
    min_delta: float = 0.002
    seed: int = 42
    device: str = "auto"
    threads: int = 0  # 0 = let torch decide
    pretrained_path: str | None = None


def make_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    kinds = {
        "sgd": lambda: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay),
        "adam": lambda: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        "adagrad": lambda: torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
    }
    if cfg.optimizer not in kinds:
        raise ConfigError(f"train_model.optimizer: unknown {cfg.optimizer!r}; choose from {sorted(kinds)}")
    return kinds[cfg.optimizer]()


def class_weights(cfg: TrainConfig, data: PatchSet, n_classes: int) -> torch.Tensor | None:
    """Inverse-frequency weights so rare diseases count as much as common ones in the loss."""
    if cfg.class_weights == "none":
        return None
    if cfg.class_weights != "balanced":
        raise ConfigError(f"train_model.class_weights: 'none' or 'balanced', found {cfg.class_weights!r}")
    counts = torch.bincount(data.labels, minlength=n_classes).float().clamp(min=1)
    return counts.sum() / (n_classes * counts)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device: torch.device, batch: int = 256) -> np.ndarray:
    """Class probabilities for uint8 images. The caller puts the model in eval mode (exported
    models from the registry are already frozen in it and refuse `.eval()`)."""
    out = [torch.softmax(model(normalize(images[i:i + batch].to(device))).float(), 1).cpu()
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def _epoch(model: nn.Module, data: PatchSet, cfg: TrainConfig, opt: torch.optim.Optimizer,
           loss_fn: nn.Module, device: torch.device, gen: torch.Generator) -> float:
    model.train()
    order = torch.randperm(len(data.labels), generator=gen)
    total = 0.0
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        x = normalize(augment(data.images[idx], gen).to(device, non_blocking=True))
        y = data.labels[idx].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / max(len(order), 1)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fit(model: nn.Module, train: PatchSet, val: PatchSet, cfg: TrainConfig, task: TaskConfig,
         device: torch.device) -> tuple[dict[str, Any], list[dict[str, float]], Any]:
    """Epoch loop with early stopping; returns the best state, the history and the optimizer."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = make_optimizer(cfg, model.parameters())
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs) if cfg.scheduler == "cosine" else None
    weights = class_weights(cfg, train, len(task.classes))
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device),
                                  label_smoothing=cfg.label_smoothing)
    best: dict[str, Any] = {"score": -1.0, "epoch": -1, "state": None}
    history: list[dict[str, float]] = []
    with Progress() as progress:
        bar = progress.add_task("train_model", total=cfg.epochs)
        for epoch in range(cfg.epochs):
            train_loss = _epoch(model, train, cfg, opt, loss_fn, device, gen)
            if sched is not None:
                sched.step()
            model.eval()
            probs = predict(model, val.images, device)
            m = classification_metrics(val.labels.numpy(), probs.argmax(1), task.classes)
            row = {"train_loss": train_loss, "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"]}
            history.append(row)
            mlflow.log_metrics(row, step=epoch)
            progress.update(bar, advance=1, description=f"epoch {epoch} val_f1={m['macro_f1']:.3f}")
            if m["macro_f1"] > best["score"] + cfg.min_delta:
                best = {"score": m["macro_f1"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            elif epoch - best["epoch"] >= cfg.patience:
                break
    return best, history, opt


def _log_model(model: nn.Module, sample: torch.Tensor, task: TaskConfig, cfg: TrainConfig, out_dir: Path) -> str:
    model = model.cpu().eval()
    example = normalize(sample[:2]).numpy()
    with torch.no_grad():
        signature = infer_signature(example, model(torch.from_numpy(example)).numpy())
    info = mlflow.pytorch.log_model(
        model, name="model", signature=signature, input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "torchvision==0.29.2"])
    prep = {"classes": list(task.classes), "image_size": cfg.image_size, "mean": MEAN, "std": STD,
            "input": "RGB uint8 patch resized to image_size, scaled to [0,1], normalised"}
    (out_dir / "preprocessing.json").write_text(json.dumps(prep, indent=2))
    mlflow.log_artifact(str(out_dir / "preprocessing.json"))
    return info.model_uri


def _log_dataset(patch_dir: Path) -> None:
    """Record what this model learned from: the patch table as an MLflow dataset input (digest,
    per-row split/label/augmentation) plus crop_patches' class counts and contact sheet."""
    import mlflow.data
    import pandas as pd

    table = pd.read_parquet(patch_dir / "patches.parquet")
    keep = [c for c in ("patch_id", "base_patch_id", "sha256", "box_index", "label", "patient_id", "split",
                        "augment") if c in table.columns]
    mlflow.log_input(mlflow.data.from_pandas(table[keep], source=str(patch_dir.resolve()), targets="label",
                                             name="patches"), context="training")
    for name in ("crop_report.json", "contact_sheet.png"):
        if (patch_dir / name).is_file():
            mlflow.log_artifact(str(patch_dir / name), artifact_path="dataset")


def run(cfg: TrainConfig, task: TaskConfig, tracking: TrackingConfig, patch_dir: Path, out_dir: Path,
        data_version: str = "unknown") -> dict[str, Any]:
    """Train on `patch_dir` (crop_patches output); write checkpoint + summary into `out_dir`."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train = load_split(patch_dir, "train", task.classes, cfg.image_size)
    val = load_split(patch_dir, "val", task.classes, cfg.image_size)
    if len(train.labels) == 0 or len(val.labels) == 0:
        raise DataError(patch_dir, f"need patches in train and val, found {len(train.labels)}/{len(val.labels)}")
    device = pick_device(cfg.device)
    model = build_model(cfg.arch, len(task.classes), cfg.dropout, cfg.pretrained_path).to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup(tracking, f"{tracking.experiment}-{task.name}")
    with mlflow.start_run(run_name=f"train-{cfg.arch}") as active:
        mlflow.log_params({**dataclasses.asdict(cfg), "task": task.name, "classes": ",".join(task.classes),
                           "n_train": len(train.labels), "n_val": len(val.labels), "device": str(device)})
        mlflow.set_tags({"data_version": data_version, "git_commit": _git_commit(), "stage": "train_model"})
        _log_dataset(patch_dir)
        best, history, opt = _fit(model, train, val, cfg, task, device)
        model.load_state_dict(best["state"])
        torch.save({"state_dict": best["state"], "optimizer": opt.state_dict(), "epoch": best["epoch"],
                    "config": dataclasses.asdict(cfg), "classes": list(task.classes)}, out_dir / CHECKPOINT)
        plot_curves(history, out_dir / "curves.png")
        mlflow.log_artifact(str(out_dir / "curves.png"))
        model_uri = _log_model(model, train.images, task, cfg, out_dir)
        mlflow.log_metrics({"best_val_macro_f1": best["score"], "best_epoch": best["epoch"]})
        summary = {"run_id": active.info.run_id, "experiment_id": active.info.experiment_id,
                   "model_uri": model_uri, "arch": cfg.arch, "best_epoch": best["epoch"],
                   "best_val_macro_f1": best["score"], "epochs_run": len(history),
                   "classes": list(task.classes), "data_version": data_version}
    write_json(out_dir / SUMMARY, summary)
    return summary
