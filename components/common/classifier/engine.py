"""One training step, one epoch, one validation pass (cf. torchvision references/classification's
engine.py), plus the optimizer, scheduler and precision they run with.

GPU paths switch on only on CUDA, so the same code runs (exactly reproducibly) on CPU: bf16
autocast (fp16 + a grad scaler on GPUs without bf16), channels-last memory format, uint8 batches
converted and augmented on the device, and no per-batch host synchronisation (the loss is summed
on the device and read once per epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from components.common.classifier.augment import augment
from components.common.classifier.config import TrainConfig
from components.common.classifier.loader import Source
from components.common.classifier.models import hold_frozen
from components.common.preprocessing import IMAGENET, Normalization, normalize

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it (no loss scaling needed), fp16 on older GPUs, none on CPU."""
    if cfg.amp == "off" or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def make_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    kinds = {
        "sgd": lambda: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay),
        "adam": lambda: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        "adagrad": lambda: torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
    }
    return kinds[cfg.optimizer]()


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int = 1) -> Scheduler | None:
    """`onecycle` is stepped after every batch (`steps_per_epoch` × `epochs` steps: warm-up over
    `warmup_fraction` of them to `lr`, then cosine annealing to lr/10⁴ — a schedule that ends exactly
    when the epochs do); the others once per epoch; `plateau` watches val macro-F1 (mode max), the
    early-stopping score."""
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=cfg.lr,
            epochs=cfg.epochs,
            steps_per_epoch=max(1, steps_per_epoch),
            pct_start=cfg.warmup_fraction,
        )
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, cfg.step_size, cfg.gamma)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="max",
            factor=cfg.gamma,
            patience=cfg.plateau_patience,
            threshold=cfg.min_delta,
            threshold_mode="abs",
        )
    return None


def per_batch(sched: Scheduler | None) -> bool:
    """OneCycle moves the learning rate every batch; the other schedules once per epoch."""
    return isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)


def step_scheduler(sched: Scheduler | None, score: float) -> None:
    """The end-of-epoch step (nothing for a per-batch schedule: the Trainer stepped it)."""
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(score)
    elif sched is not None and not per_batch(sched):
        sched.step()


def class_weights(cfg: TrainConfig, labels: torch.Tensor, n_classes: int) -> torch.Tensor | None:
    """Inverse-frequency weights so rare diseases count as much as common ones in the loss (none
    with the balanced sampler, which already shows every class equally often)."""
    if cfg.class_weights == "none" or cfg.sampler == "balanced":
        return None
    counts = torch.bincount(labels, minlength=n_classes).float().clamp(min=1)
    return counts.sum() / (n_classes * counts)


def epoch_order(cfg: TrainConfig, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One epoch's row order: a permutation of every row (`shuffle`), or `len(labels)` draws with
    replacement, each class equally likely (`balanced`: imbalance handled without dropping or
    copying a single patch)."""
    if cfg.sampler == "shuffle":
        return torch.randperm(len(labels), generator=gen)
    counts = torch.bincount(labels).double()
    weights = (1.0 / counts.clamp(min=1))[labels]
    return torch.multinomial(weights, len(labels), replacement=True, generator=gen)


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, device: torch.device, norm: Normalization, batch: int = 256
) -> np.ndarray:
    """Class probabilities for uint8 images, normalised as the model was trained. The caller puts
    the model in eval mode (exported models from the registry are frozen in it and refuse `.eval()`)."""
    out = [
        torch.softmax(model(normalize(images[i : i + batch].to(device), norm)).float(), 1).cpu()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


@dataclass
class Trainer:
    """What one optimisation step needs; `model` may be the DDP wrapper."""

    model: nn.Module
    opt: torch.optim.Optimizer
    loss_fn: nn.Module
    device: torch.device
    augment: str
    aug_gen: torch.Generator
    dtype: torch.dtype | None = None
    channels_last: bool = False
    frozen: list[nn.Module] = field(default_factory=list)
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cpu", enabled=False))
    orientation: str = "any"  # which flips/turns keep the label (augment.ORIENTATIONS)
    norm: Normalization = IMAGENET  # the training patches' statistics (components/common/preprocessing.py)
    batch_sched: Scheduler | None = None  # a per-batch schedule (OneCycle), stepped after every update

    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 batch on the device → (augmented) normalised float, channels-last on CUDA (converted
        while still uint8: a quarter of the bytes; the float ops keep the layout)."""
        x = augment(x, self.augment, self.aug_gen, self.orientation) if train else x
        return normalize(x.contiguous(memory_format=torch.channels_last) if self.channels_last else x, self.norm)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward, backward, update on a prepared batch; returns the loss (still on the device)."""
        with torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
            loss = self.loss_fn(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.batch_sched is not None:
            self.batch_sched.step()
        return loss.detach()

    def epoch(self, source: Source, indices: torch.Tensor, batch_size: int) -> tuple[float, int]:
        """One pass over `indices` of `source`; returns (summed loss, images seen)."""
        self.model.train()
        hold_frozen(self.frozen)
        total = torch.zeros((), device=self.device)
        seen = 0
        for x, y in source.batches(indices, batch_size):
            total += self.step(self.prepare(x, train=True), y) * len(y)
            seen += len(y)
        return float(total.item()), seen

    @torch.no_grad()
    def probabilities(self, model: nn.Module, source: Source, batch_size: int = 256) -> np.ndarray:
        """Validation pass (no augmentation) with the unwrapped `model`, in the training precision."""
        model.eval()
        out = []
        for x, _ in source.batches(torch.arange(len(source)), batch_size):
            with torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
                out.append(torch.softmax(model(self.prepare(x, train=False)).float(), 1))
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0))
