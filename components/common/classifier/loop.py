"""The epoch loop: train, validate, schedule, stop early, checkpoint — and resume where it stopped.

Early stopping follows seeds 000/003: the best val macro-F1 counts only if it beats the previous
best by `min_delta`, and training stops `patience` epochs after the last such gain. Which epoch's
weights are kept is `keep_weights` (selection.py: the best epoch, or the latest one the best does
not beat significantly). The kept weights and the best epoch's val predictions are held in memory
and in `last.pt`, so a resumed run knows what it is trying to beat.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from components.common.classifier import distributed
from components.common.classifier.checkpoint import FORMAT, LAST, rng_state, save_atomic, set_rng_state
from components.common.classifier.config import TrainConfig
from components.common.classifier.distributed import Dist
from components.common.classifier.engine import (
    Scheduler,
    Trainer,
    amp_dtype,
    class_weights,
    epoch_order,
    make_optimizer,
    make_scheduler,
    per_batch,
    step_scheduler,
)
from components.common.classifier.loader import Source
from components.common.classifier.models import trainable
from components.common.classifier.selection import TieTest
from components.common.metrics import classification_metrics
from components.common.preprocessing import IMAGENET, Normalization
from components.common.task import TaskConfig

EpochHook = Callable[[int, dict[str, float]], None]


@dataclass
class FitState:
    next_epoch: int = 0
    best_score: float = -1.0  # the highest val macro-F1 (gains under min_delta do not count)
    best_epoch: int = -1
    best_pred: torch.Tensor | None = None  # the best epoch's val predictions (rank 0; latest_tied)
    best_state: dict[str, torch.Tensor] | None = None  # the KEPT weights (keep_weights)
    kept_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: bool = False
    norm: Normalization = IMAGENET  # the train patches' statistics the run normalised with
    epochs: int = 0  # the planned length (train_model.epochs, raised to reach min_steps)

    @property
    def kept_score(self) -> float:
        """The kept weights' val macro-F1 (their epoch's row of the history)."""
        return self.history[self.kept_epoch]["val_macro_f1"] if self.kept_epoch >= 0 else -1.0


def steps_per_epoch(n_train: int, cfg: TrainConfig, ctx: Dist) -> int:
    """Optimizer steps in one epoch on this rank (every rank makes the same number: see `shard`)."""
    return -(-len(distributed.shard(torch.arange(n_train), ctx)) // cfg.batch_size)


def augment_seed(seed: int, rank: int) -> int:
    """Each rank its own augmentation stream, all derived from the one configured seed."""
    return (seed * 1_000_003 + 7919 * (rank + 1)) % (2**63)


@dataclass
class Parts:
    """Everything an epoch needs besides the data (built once per run by `_parts`)."""

    trainer: Trainer
    sched: Scheduler | None
    order: torch.Generator  # the epoch permutations: the same stream on every rank
    cfg: TrainConfig
    task: TaskConfig
    ctx: Dist
    device: torch.device
    ties: TieTest | None  # latest_tied on rank 0: the val split's paired bootstrap


def _ties(cfg: TrainConfig, val: Source, n_classes: int, ctx: Dist) -> TieTest | None:
    if cfg.keep_weights != "latest_tied" or not ctx.main:
        return None
    units = val.units if val.units is not None else tuple(str(i) for i in range(len(val)))
    return TieTest(val.labels.numpy(), units, n_classes, cfg.keep_confidence, cfg.keep_resamples, cfg.seed)


def _parts(
    model: nn.Module,
    sources: tuple[Source, Source],
    cfg: TrainConfig,
    task: TaskConfig,
    device: torch.device,
    ctx: Dist,
    frozen: list[nn.Module],
    norm: Normalization,
) -> Parts:
    train, val = sources
    opt = make_optimizer(cfg, trainable(model))
    sched = make_scheduler(cfg, opt, steps_per_epoch(len(train), cfg, ctx))
    dtype = amp_dtype(cfg, device)
    weights = class_weights(cfg, train.labels, len(task.classes))
    loss_fn = nn.CrossEntropyLoss(
        weight=None if weights is None else weights.to(device), label_smoothing=cfg.label_smoothing
    )
    aug = torch.Generator().manual_seed(augment_seed(cfg.seed, ctx.rank))
    trainer = Trainer(
        model,
        opt,
        loss_fn,
        device,
        cfg.augment,
        aug,
        dtype,
        cfg.channels_last and device.type == "cuda",
        frozen,
        torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        orientation=cfg.augment_orientation,
        norm=norm,
        batch_sched=sched if per_batch(sched) else None,
    )
    order = torch.Generator().manual_seed(cfg.seed)
    return Parts(trainer, sched, order, cfg, task, ctx, device, _ties(cfg, val, len(task.classes), ctx))


def _restore(ckpt: dict[str, Any], model: nn.Module, p: Parts) -> FitState:
    model.load_state_dict(ckpt["state_dict"])
    p.trainer.opt.load_state_dict(ckpt["optimizer"])
    if p.sched is not None and ckpt["scheduler"] is not None:
        p.sched.load_state_dict(ckpt["scheduler"])
    if ckpt["scaler"]:
        p.trainer.scaler.load_state_dict(ckpt["scaler"])
    if not set_rng_state(ckpt["rng"], p.ctx.rank, p.order, p.trainer.aug_gen):
        print(f"train_model: resumed with {p.ctx.world} processes from {len(ckpt['rng'])}: not bit-exact")
    return FitState(
        next_epoch=ckpt["next_epoch"],
        best_score=ckpt["best_score"],
        best_epoch=ckpt["best_epoch"],
        best_state=ckpt["best_state_dict"],
        best_pred=ckpt.get("best_pred"),  # absent in older files: ties count again from the next best
        kept_epoch=ckpt.get("kept_epoch", ckpt["best_epoch"]),
        history=list(ckpt["history"]),
        stopped=ckpt["stopped"],
    )


def _save_last(path: Path, model: nn.Module, p: Parts, state: FitState, rngs: list[Any], run_id: str | None) -> None:
    save_atomic(
        {
            "format": FORMAT,
            "state_dict": model.state_dict(),
            "optimizer": p.trainer.opt.state_dict(),
            "scheduler": None if p.sched is None else p.sched.state_dict(),
            "scaler": p.trainer.scaler.state_dict(),
            "epoch": state.next_epoch - 1,
            "next_epoch": state.next_epoch,
            "stopped": state.stopped,
            "best_score": state.best_score,
            "best_epoch": state.best_epoch,
            "best_state_dict": state.best_state,
            "best_pred": state.best_pred,
            "kept_epoch": state.kept_epoch,
            "history": state.history,
            "rng": rngs,
            "config": dataclasses.asdict(p.cfg),
            "classes": list(p.task.classes),
            "world_size": len(rngs),
            "mlflow_run_id": run_id,
        },
        path,
    )


def _validate(p: Parts, model: nn.Module, val: Source, state: FitState, epoch: int) -> tuple[list[float], float]:
    """Rank 0's [macro-F1, improved, stop, keep] and val accuracy; a new best's predictions go
    into `state.best_pred` (rank 0 only: the other ranks never compare)."""
    pred = p.trainer.probabilities(model, val).argmax(1)
    m = classification_metrics(val.labels.numpy(), pred, p.task.classes)
    improved = m["macro_f1"] > state.best_score + p.cfg.min_delta
    stop = not improved and epoch - state.best_epoch >= p.cfg.patience and epoch + 1 >= p.cfg.epochs_before_stopping
    tied = p.ties is not None and state.best_pred is not None and p.ties.tied(state.best_pred.numpy(), pred)
    if improved:
        state.best_pred = torch.from_numpy(np.asarray(pred))
    return [m["macro_f1"], float(improved), float(stop), float(improved or tied)], m["accuracy"]


def _epoch(p: Parts, model: nn.Module, train: Source, val: Source, state: FitState, epoch: int) -> dict[str, float]:
    """Train one epoch on this rank's shard, validate on rank 0, update `state` on every rank."""
    start, lr = time.perf_counter(), float(p.trainer.opt.param_groups[0]["lr"])
    shard = distributed.shard(epoch_order(p.cfg, train.labels, p.order), p.ctx)
    loss_sum, seen = distributed.sum_all(list(p.trainer.epoch(train, shard, p.cfg.batch_size)), p.ctx, p.device)
    verdict, accuracy = _validate(p, model, val, state, epoch) if p.ctx.main else ([0.0] * 4, 0.0)
    score, improved, stop, keep = distributed.from_main(verdict, p.ctx, p.device)
    step_scheduler(p.sched, score)
    seconds = time.perf_counter() - start
    row = {
        "epoch": epoch,
        "train_loss": loss_sum / max(seen, 1),
        "val_accuracy": accuracy,
        "val_macro_f1": score,
        "lr": lr,
        "epoch_seconds": seconds,
        "train_images_per_s": seen / seconds,
    }
    state.history.append(row)
    if improved:
        state.best_score, state.best_epoch = score, epoch
    if keep:
        state.kept_epoch = epoch
        state.best_state = copy.deepcopy(model.state_dict())
    state.next_epoch, state.stopped = epoch + 1, bool(stop)
    return row


def fit(
    model: nn.Module,
    train: Source,
    val: Source,
    cfg: TrainConfig,
    task: TaskConfig,
    device: torch.device,
    ctx: Dist,
    out_dir: Path,
    frozen: list[nn.Module],
    resume: dict[str, Any] | None = None,
    on_epoch: EpochHook | None = None,
    run_id: str | None = None,
) -> FitState:
    """Train `model` (already on `device`) until `cfg.epochs` or early stopping, from `resume` (a
    loaded last.pt) if given; rank 0 writes `last.pt` after every epoch, then calls `on_epoch`.

    Inputs are normalised with the train source's own channel statistics (recomputed on a resume:
    the same patches give the same numbers), returned in `FitState.norm` to be stored with the model."""
    norm = train.normalization()
    cfg = cfg.planned(steps_per_epoch(len(train), cfg, ctx))
    p = _parts(model, (train, val), cfg, task, device, ctx, frozen, norm)
    state = _restore(resume, model, p) if resume else FitState()
    state.norm, state.epochs = norm, cfg.epochs
    p.trainer.model = distributed.wrap(model, ctx, device)  # after the restore: DDP syncs from rank 0
    last = state.next_epoch if state.stopped else cfg.epochs  # a resumed, stopped run only finishes
    with Progress(disable=not ctx.main) as progress:
        bar = progress.add_task("train_model", total=cfg.epochs, completed=state.next_epoch)
        for epoch in range(state.next_epoch, last):
            row = _epoch(p, model, train, val, state, epoch)
            rngs = distributed.gather(rng_state(p.order, p.trainer.aug_gen), ctx)
            if ctx.main:
                _save_last(out_dir / LAST, model, p, state, rngs, run_id)
                if on_epoch is not None:
                    on_epoch(epoch, row)
                progress.update(bar, advance=1, description=f"epoch {epoch} val_f1={row['val_macro_f1']:.3f}")
            if state.stopped:
                break
    return state
