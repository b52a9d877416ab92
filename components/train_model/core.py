"""Train a classifier on patches with early stopping; log everything to MLflow.

`run` wires the pieces (torchvision references/classification style): `loader` (batches on the
device), `engine` (one step / epoch / validation pass), `loop` (epochs, early stopping, `last.pt`,
resume), `distributed` (torchrun DDP), `checkpoint`, `models`/`pretrained`. It keeps the best-on-
validation weights (macro-F1, min-delta, patience as seeds 000/003 do) in `checkpoint.pt`, and logs
the model with its signature, class list and preprocessing so the registry entry is usable alone.
Under DDP only rank 0 talks to MLflow and writes files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.models import infer_signature
from torch import nn

from components.common.classifier import distributed
from components.common.classifier.checkpoint import CHECKPOINT, SUMMARY, load_resume, save_best
from components.common.classifier.config import TrainConfig
from components.common.classifier.distributed import Dist
from components.common.classifier.engine import amp_dtype
from components.common.classifier.loader import Source, open_split
from components.common.classifier.loop import FitState, fit
from components.common.classifier.models import build_model, freeze, trainable
from components.common.classifier.pretrained import LoadReport, load_weights
from components.common.errors import DataError
from components.common.io import write_json
from components.common.plot_data import write_csv
from components.common.preprocessing import Normalization, normalize
from components.common.skip import not_trained, write_skipped
from components.common.task import TaskConfig
from components.common.tracking import EpochLogger, TrackingConfig, git_commit, setup, torch_requirements
from components.train_model.plots import CURVES_CSV, CURVES_HEADER, plot_curves, write_curves


def _log_model(
    model: nn.Module, sample: torch.Tensor, task: TaskConfig, cfg: TrainConfig, out_dir: Path, norm: Normalization
) -> str:
    """The model with its signature, and `preprocessing.json`: what serving and evaluation need to
    feed it exactly as training did (classes, input size, the train patches' mean/std)."""
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    example = normalize(sample[:2], norm).numpy()
    with torch.no_grad():
        signature = infer_signature(example, model(torch.from_numpy(example)).numpy())
    # Pickled nn.Module, not a torch.export program: serving and drift monitoring hook the last Linear
    # layer for embeddings (components/common/embedding.py), which an exported graph does not allow.
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        serialization_format="pickle",
        pip_requirements=torch_requirements(),
    )
    prep = {
        "classes": list(task.classes),
        "image_size": cfg.image_size,
        **norm.as_dict(),
        "normalization": "per-channel mean/std of the training patches",
        "input": "RGB uint8 patch resized to image_size, scaled to [0,1], normalised with mean/std",
    }
    (out_dir / "preprocessing.json").write_text(json.dumps(prep, indent=2))
    mlflow.log_artifact(str(out_dir / "preprocessing.json"))
    return info.model_uri


def _log_dataset(patch_dir: Path) -> None:
    """Record what this model learned from: the patch table as an MLflow dataset input (digest,
    per-row split/label/augmentation) plus crop_patches' class counts and contact sheet."""
    import mlflow.data
    import pandas as pd

    table = pd.read_parquet(patch_dir / "patches.parquet")
    keep = [
        c
        for c in ("patch_id", "base_patch_id", "sha256", "box_index", "label", "patient_id", "split", "augment")
        if c in table.columns
    ]
    mlflow.log_input(
        mlflow.data.from_pandas(table[keep], source=str(patch_dir.resolve()), targets="label", name="patches"),
        context="training",
    )
    for name in ("crop_report.json", "contact_sheet.png"):
        if (patch_dir / name).is_file():
            mlflow.log_artifact(str(patch_dir / name), artifact_path="dataset")


def _log_start(
    cfg: TrainConfig,
    task: TaskConfig,
    train: Source,
    val: Source,
    model: nn.Module,
    device: torch.device,
    ctx: Dist,
    report: LoadReport | None,
    resume: dict[str, Any] | None,
    data_version: str,
) -> None:
    dtype = amp_dtype(cfg, device)
    mlflow.log_params(
        {
            **dataclasses.asdict(cfg),
            "task": task.name,
            "classes": ",".join(task.classes),
            "n_train": len(train),
            "n_val": len(val),
            "device": str(device),
            "world_size": ctx.world,
            "amp_dtype": str(dtype).removeprefix("torch.") if dtype else "off",
            "trainable_params": sum(p.numel() for p in trainable(model)),
            "total_params": sum(p.numel() for p in model.parameters()),
            **(report.as_params() if report else {}),
        }
    )
    tags = {"data_version": data_version, "git_commit": git_commit(), "stage": "train_model"}
    if resume:
        tags.update(resumed_from_run=str(resume.get("mlflow_run_id")), resumed_after_epoch=str(resume["epoch"]))
    mlflow.set_tags(tags)


def _finish(
    model: nn.Module,
    state: FitState,
    train: Source,
    cfg: TrainConfig,
    task: TaskConfig,
    out_dir: Path,
    active: mlflow.ActiveRun,
    data_version: str,
) -> dict[str, Any]:
    """Kept weights into checkpoint.pt, curves and model into MLflow; returns the summary."""
    assert state.best_state is not None  # the first epoch always beats the initial score of -1
    model.load_state_dict(state.best_state)
    save_best(out_dir / CHECKPOINT, state.best_state, cfg, task.classes, state.kept_epoch, state.kept_score, state.norm)
    plot_curves(state.history, out_dir / "curves.png")
    write_curves(state.history, out_dir / CURVES_CSV)
    mlflow.log_artifact(str(out_dir / CURVES_CSV))
    mlflow.log_artifact(str(out_dir / "curves.png"))
    model_uri = _log_model(model, train.sample(2), task, cfg, out_dir, state.norm)
    mlflow.log_metrics(
        {
            "best_val_macro_f1": state.best_score,
            "best_epoch": state.best_epoch,
            "kept_val_macro_f1": state.kept_score,
            "kept_epoch": state.kept_epoch,
        }
    )
    mlflow.log_param("epochs_planned", state.epochs)  # epochs raised to reach min_steps on a small set
    return {
        "run_id": active.info.run_id,
        "experiment_id": active.info.experiment_id,
        "kind": "classifier",
        "model_uri": model_uri,
        "arch": cfg.arch,
        "best_epoch": state.best_epoch,
        "best_val_macro_f1": state.best_score,
        "kept_epoch": state.kept_epoch,  # the weights logged (train_model.keep_weights)
        "kept_val_macro_f1": state.kept_score,
        "epochs_run": len(state.history),
        "epochs_planned": state.epochs,
        "classes": list(task.classes),
        "data_version": data_version,
        "normalization": state.norm.as_dict(),
    }


def run(
    cfg: TrainConfig,
    task: TaskConfig,
    tracking: TrackingConfig,
    patch_dir: Path,
    out_dir: Path,
    data_version: str = "unknown",
) -> dict[str, Any]:
    """Train on `patch_dir` (crop_patches output); write checkpoints + summary into `out_dir`.

    Returns the summary (on DDP ranks other than 0: only `{"rank": r}`; they write nothing).
    """
    if reason := not_trained(task, "classifier"):
        write_csv(out_dir / CURVES_CSV, CURVES_HEADER, [])
        return write_skipped(out_dir / SUMMARY, reason)
    ctx, device = distributed.init(cfg.device)
    try:
        return _train(cfg, task, tracking, patch_dir, out_dir, data_version, ctx, device)
    finally:
        distributed.shutdown(ctx)


def _model(
    cfg: TrainConfig, n_classes: int, device: torch.device, ctx: Dist, loads_weights: bool
) -> tuple[nn.Module, list[nn.Module], LoadReport | None]:
    """The network on its device: pretrained weights (rank 0 only: DDP copies them to the other
    ranks; a resume overwrites them anyway), frozen blocks, channels-last on CUDA."""
    model = build_model(cfg.arch, n_classes, cfg.dropout)
    report = None
    if (cfg.pretrained_path or cfg.pretrained != "none") and ctx.main and loads_weights:
        report = load_weights(model, cfg.arch, cfg.pretrained, cfg.pretrained_path)
        print(
            f"train_model: pretrained {report.source}: {report.loaded} tensors loaded, {report.missing} missing, "
            f"{report.unexpected} unexpected, {report.mismatched} of another shape"
        )
    frozen = freeze(model, cfg.arch, cfg.freeze_layers)
    model = model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if ctx.enabled:
        torch.manual_seed(cfg.seed + ctx.rank)  # same initial weights (above), different dropout masks
    return model, frozen, report


def _train(
    cfg: TrainConfig,
    task: TaskConfig,
    tracking: TrackingConfig,
    patch_dir: Path,
    out_dir: Path,
    data_version: str,
    ctx: Dist,
    device: torch.device,
) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch size: pick the fastest kernels once
    train = open_split(patch_dir, "train", task.classes, cfg, device)
    val = open_split(patch_dir, "val", task.classes, cfg, device)
    if len(train) == 0 or len(val) == 0:
        raise DataError(patch_dir, f"need patches in train and val, found {len(train)}/{len(val)}")
    resume = load_resume(cfg.resume, cfg, task.classes) if cfg.resume else None
    model, frozen, report = _model(cfg, len(task.classes), device, ctx, loads_weights=not resume)
    if not ctx.main:
        fit(model, train, val, cfg, task, device, ctx, out_dir, frozen, resume)
        return {"rank": ctx.rank}
    out_dir.mkdir(parents=True, exist_ok=True)
    setup(tracking, f"{tracking.experiment}-{task.name}")
    with mlflow.start_run(run_name=f"train-{cfg.arch}") as active:
        _log_start(cfg, task, train, val, model, device, ctx, report, resume, data_version)
        _log_dataset(patch_dir)
        logger = EpochLogger(active.info.run_id, cfg.log_every)
        for row in resume["history"] if resume else []:  # the resumed run shows the whole curve
            logger(int(row["epoch"]), row)
        state = fit(model, train, val, cfg, task, device, ctx, out_dir, frozen, resume, logger, active.info.run_id)
        logger.flush()
        summary = _finish(model, state, train, cfg, task, out_dir, active, data_version)
    write_json(out_dir / SUMMARY, summary)
    return summary
