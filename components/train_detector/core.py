"""Train a torchvision Faster R-CNN on the detection export; early stopping on val mAP@0.5.

As torchvision's `references/detection`: SGD (or AdamW) with a linear warm-up over the first
epoch, random horizontal flips, losses summed over the RPN and box heads. The best-on-validation
weights are kept (VOC mAP@0.5, min-delta, patience), written as a resumable checkpoint and logged to
MLflow as a pickled module (torch.export cannot trace Faster R-CNN's data-dependent control flow).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import mlflow
import torch
from rich.progress import Progress
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from components.common.classifier.pretrained import local_copy
from components.common.detection_metrics import evaluate_detections
from components.common.detector import (
    CHECKPOINT,
    DETECTION_DIR,
    SUMMARY,
    DetectionSplit,
    batches,
    load_split,
    predict,
    sample,
)
from components.common.device import pick_device
from components.common.errors import ConfigError, DataError
from components.common.io import write_json
from components.common.skip import not_trained, write_skipped
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, git_commit, setup, torch_requirements
from components.train_detector.config import ARCHS, DetectorConfig


def build_detector(cfg: DetectorConfig, n_classes: int) -> FasterRCNN:
    """Faster R-CNN + FPN with random weights, built from torchvision's public backbone helpers.

    The graph and state-dict keys equal `fasterrcnn_*_fpn(weights=None, ...)`, so torchvision's COCO
    checkpoints load; building the backbone here is what lets `trainable_backbone_layers` and
    frozen batch-norm apply to weights loaded from `pretrained_path` (the torchvision builders
    ignore both unless they download the weights themselves).
    """
    name, most = ARCHS[cfg.arch]
    pretrained = cfg.pretrained_path is not None
    norm = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    layers = cfg.trainable_backbone_layers if pretrained else most
    heads: dict[str, Any] = {
        "min_size": cfg.min_size,
        "max_size": cfg.max_size,
        "box_score_thresh": cfg.score_threshold,
    }
    sizes = cfg.anchor_sizes or (32, 64, 128, 256, 512)
    if name.startswith("mobilenet"):  # 3 feature maps, every size on each (torchvision's layout)
        backbone = mobilenet_backbone(
            backbone_name=name, weights=None, fpn=True, norm_layer=norm, trainable_layers=layers
        )
        anchors = AnchorGenerator((sizes,) * 3, (cfg.aspect_ratios,) * 3)
        heads.update(rpn_score_thresh=0.05)
    else:  # 5 pyramid levels, one size each
        backbone = resnet_fpn_backbone(backbone_name=name, weights=None, norm_layer=norm, trainable_layers=layers)
        anchors = AnchorGenerator(tuple((s,) for s in sizes), (cfg.aspect_ratios,) * len(sizes))
    return FasterRCNN(backbone, num_classes=n_classes + 1, rpn_anchor_generator=anchors, **heads)


def _read_state(uri: str) -> dict[str, torch.Tensor]:
    """A state_dict from a local file or `s3://bucket/key` (downloaded the way train_model does:
    standard AWS config, a DataError naming the URI when the object is missing)."""
    if not uri.startswith("s3://") and not Path(uri).is_file():
        raise ConfigError(f"train_detector.pretrained_path: {uri} is not a file")
    with local_copy(uri) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):  # our checkpoint / torchvision references' checkpoint
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    return state


def load_pretrained(model: nn.Module, uri: str) -> dict[str, int]:
    """Load what fits (strict=False); a classification backbone's keys are mapped onto
    `backbone.body`. Shape mismatches (another class count's box predictor) are skipped."""
    state, own = _read_state(uri), model.state_dict()
    renames = [lambda k: k, lambda k: f"backbone.body.{k}", lambda k: f"backbone.body.{k.removeprefix('features.')}"]
    best = max(renames, key=lambda f: sum(f(k) in own for k in state))
    mapped = {best(k): v for k, v in state.items()}
    fits = {k: v for k, v in mapped.items() if k in own and own[k].shape == v.shape}
    if not fits:
        raise ConfigError(f"train_detector.pretrained_path: no tensor of {uri} fits the model")
    model.load_state_dict(fits, strict=False)
    return {
        "pretrained_loaded": len(fits),
        "pretrained_skipped": len(mapped) - len(fits),
        "pretrained_missing": len(own) - len(fits),
    }


def _optimizer(cfg: DetectorConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _epoch(
    model: nn.Module,
    train: DetectionSplit,
    cfg: DetectorConfig,
    opt: torch.optim.Optimizer,
    warmup: torch.optim.lr_scheduler.LRScheduler | None,
    device: torch.device,
    gen: torch.Generator,
    epoch: int,
) -> float:
    model.train()
    total, seen = 0.0, 0
    for idx in batches(len(train.items), cfg.batch_size, gen):
        flips = (torch.rand(len(idx), generator=gen) < 0.5).tolist()
        pairs = [sample(train.items[i], f) for i, f in zip(idx, flips, strict=True)]
        images = [img.to(device, non_blocking=True) for img, _ in pairs]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for _, t in pairs]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = sum(model(images, targets).values())
        value = float(loss.item())
        if not math.isfinite(value):
            raise ConfigError(f"train_detector.lr: the loss became {value} in epoch {epoch}; lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if warmup is not None and epoch == 0:
            warmup.step()
        total, seen = total + value * len(idx), seen + len(idx)
    return total / max(seen, 1)


def _fit(
    model: nn.Module,
    train: DetectionSplit,
    val: DetectionSplit,
    cfg: DetectorConfig,
    n_classes: int,
    device: torch.device,
) -> tuple[dict[str, Any], list[dict[str, float]], Any]:
    """Epoch loop with early stopping on val mAP@0.5; returns the best state, history, optimizer."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = _optimizer(cfg, model)
    steps = math.ceil(len(train.items) / cfg.batch_size)
    warmup = torch.optim.lr_scheduler.LinearLR(opt, 1e-3, 1.0, min(1000, steps - 1)) if steps > 1 else None
    best: dict[str, Any] = {"score": -1.0, "epoch": -1, "state": None}
    history: list[dict[str, float]] = []
    with Progress() as progress:
        bar = progress.add_task("train_detector", total=cfg.epochs)
        for epoch in range(cfg.epochs):
            loss = _epoch(model, train, cfg, opt, warmup, device, gen, epoch)
            model.eval()
            score = evaluate_detections(val.ground_truth(), predict(model, val, device, cfg.batch_size), n_classes)[
                "map50"
            ]
            row = {"train_loss": loss, "val_map50": float(score)}
            history.append(row)
            mlflow.log_metrics(row, step=epoch)
            progress.update(bar, advance=1, description=f"epoch {epoch} val mAP@0.5={score:.3f}")
            if score > best["score"] + cfg.min_delta:
                best = {
                    "score": score,
                    "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                }
            elif epoch - best["epoch"] >= cfg.patience:
                break
    return best, history, opt


def _log_model(model: nn.Module, cfg: DetectorConfig, task: TaskConfig, out_dir: Path) -> str:
    """The module (pickle: torch.export cannot trace Faster R-CNN) plus its class list and
    input contract, beside it and inside it, so the registry entry stands on its own."""
    model = model.cpu().eval()
    transform: Any = model.transform
    (out_dir / "classes.json").write_text(json.dumps(list(task.classes), indent=2))
    prep = {
        "classes": list(task.classes),
        "label_offset": 1,
        "arch": cfg.arch,
        "min_size": cfg.min_size,
        "max_size": cfg.max_size,
        "image_mean": list(transform.image_mean),
        "image_std": list(transform.image_std),
        "score_threshold": cfg.score_threshold,
        "input": "list of RGB float tensors 3×H×W in [0,1], stored pixel frame; resized and "
        "normalised inside the model",
        "output": "per image {boxes: xyxy pixels, scores, labels: class index + 1 (0 = background)}",
    }
    (out_dir / "preprocessing.json").write_text(json.dumps(prep, indent=2))
    extra = [str(out_dir / "classes.json"), str(out_dir / "preprocessing.json")]
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        serialization_format="pickle",
        extra_files=extra,
        pip_requirements=torch_requirements(),
    )
    for path in extra:
        mlflow.log_artifact(path)
    return info.model_uri


def _log_dataset(patch_dir: Path) -> None:
    """The boxes this detector learned from (crop_patches' detection table) as an MLflow input."""
    table_path = patch_dir / DETECTION_DIR / "detection.parquet"
    if not table_path.is_file():
        return
    import mlflow.data
    import pandas as pd

    mlflow.log_input(
        mlflow.data.from_pandas(
            pd.read_parquet(table_path), source=str(table_path.resolve()), targets="label", name="detection"
        ),
        context="training",
    )


def run(
    cfg: DetectorConfig,
    task: TaskConfig,
    tracking: TrackingConfig,
    patch_dir: Path,
    out_dir: Path,
    data_version: str = "unknown",
) -> dict[str, Any]:
    """Train on `patch_dir/detection`; write `detector.pt` + `train_summary.json` into `out_dir`."""
    if reason := not_trained(task, "detector"):
        return write_skipped(out_dir / SUMMARY, reason)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train = load_split(patch_dir, "train", task.classes)
    val = load_split(patch_dir, "val", task.classes)
    for split in (train, val):
        if not any(len(item.labels) for item in split.items):
            raise DataError(split.annotations, "no boxes: need boxes in train (to learn) and val (mAP@0.5)")
    device = pick_device(cfg.device)
    model = build_detector(cfg, len(task.classes))
    loaded = load_pretrained(model, cfg.pretrained_path) if cfg.pretrained_path else {}
    model.to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup(tracking, f"{tracking.experiment}-{task.name}")
    with mlflow.start_run(run_name=f"train-detector-{cfg.arch}") as active:
        mlflow.log_params(
            {
                **dataclasses.asdict(cfg),
                **loaded,
                "task": task.name,
                "classes": ",".join(task.classes),
                "n_train_images": len(train.items),
                "n_val_images": len(val.items),
                "device": str(device),
            }
        )
        mlflow.set_tags(
            {"data_version": data_version, "git_commit": git_commit(), "stage": "train_detector", "kind": "detector"}
        )
        _log_dataset(patch_dir)
        best, history, opt = _fit(model, train, val, cfg, len(task.classes), device)
        model.load_state_dict(best["state"])
        torch.save(
            {
                "state_dict": best["state"],
                "optimizer": opt.state_dict(),
                "epoch": best["epoch"],
                "config": dataclasses.asdict(cfg),
                "classes": list(task.classes),
            },
            out_dir / CHECKPOINT,
        )
        model_uri = _log_model(model, cfg, task, out_dir)
        mlflow.log_metrics({"best_val_map50": best["score"], "best_epoch": best["epoch"]})
        summary = {
            "run_id": active.info.run_id,
            "experiment_id": active.info.experiment_id,
            "model_uri": model_uri,
            "registered_model": tracking.registered_detector,
            "kind": "detector",
            "arch": cfg.arch,
            "best_epoch": best["epoch"],
            "best_val_map50": best["score"],
            "epochs_run": len(history),
            "classes": list(task.classes),
            "data_version": data_version,
        }
    write_json(out_dir / SUMMARY, summary)
    return summary
