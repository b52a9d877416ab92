"""The `train_model` section of params.yaml as one frozen config, checked when it is built.

Every field has a default that reproduces the stage as it was before the field existed, so an
older params.yaml trains the same model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from components.common.classifier.augment import ORIENTATIONS
from components.common.classifier.augment import PRESETS as AUGMENTS
from components.common.classifier.selection import RULES as KEEP_RULES
from components.common.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad")
SCHEDULERS = ("none", "onecycle", "cosine", "step", "plateau")
FIXED_LENGTH = ("onecycle", "cosine")  # schedules planned over `epochs`: they end when the epochs do
LOADERS = ("memory", "dataloader")
SAMPLERS = ("shuffle", "balanced")
PRETRAINED = ("none", "imagenet")


@dataclass(frozen=True)
class TrainConfig:
    """The `train_model` section of params.yaml."""

    arch: str = "resnet18"
    image_size: int = 64
    epochs: int = 20
    min_steps: int = 0  # the run is lengthened to at least this many optimizer steps (small data sets)
    batch_size: int = 64
    optimizer: str = "adamw"  # sgd | adam | adamw | adagrad
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    dropout: float = 0.2
    label_smoothing: float = 0.0
    class_weights: str = "none"  # none | balanced (inverse class frequency, for imbalanced data)
    sampler: str = "shuffle"  # shuffle: every patch once per epoch | balanced: classes drawn equally often
    scheduler: str = "cosine"  # none | onecycle (per batch) | cosine (over `epochs`) | step | plateau (val macro-F1)
    warmup_fraction: float = 0.3  # onecycle: share of the steps spent warming up to `lr`
    step_size: int = 10  # step: epochs between learning-rate drops
    gamma: float = 0.1  # step and plateau: factor applied to the learning rate
    plateau_patience: int = 2  # plateau: epochs without a val macro-F1 gain before the drop
    patience: int = 4
    min_delta: float = 0.002
    min_epochs: int | None = 0  # no early stop before this epoch; None: not before a fixed-length schedule ends
    keep_weights: str = "best"  # best | latest_tied (see selection.py)
    keep_confidence: float = 0.95  # latest_tied: paired bootstrap level of "beats significantly"
    keep_resamples: int = 1000  # latest_tied: bootstrap resamples of the val split
    seed: int = 42
    device: str = "auto"
    threads: int = 0  # 0 = let torch decide
    pretrained: str = "none"  # none | imagenet (torchvision's weights, through the torch hub cache)
    pretrained_path: str | None = None  # local file or s3://bucket/key with a state_dict
    freeze_layers: int = 0  # first N backbone blocks kept fixed (see models.backbone_blocks)
    augment: str = "flips"  # none | flips | light | strong (see augment.py)
    augment_orientation: str = "any"  # any (flips + 90° turns) | hflip (mirror only) | none
    amp: str = "auto"  # auto: bf16 autocast on CUDA (fp16 + grad scaler where bf16 is missing) | off
    channels_last: bool = True  # NHWC on CUDA (tensor cores); ignored on CPU
    loader: str = "memory"  # memory: decode once, batches from RAM | dataloader: read files per batch
    num_workers: int = 4  # loader: dataloader only — decoding processes
    gpu_memory_fraction: float = 0.25  # memory loader on CUDA: split on the GPU within this share of free memory
    resume: str | None = None  # a last.pt to continue from (also --resume)
    log_every: int = 1  # epochs of metrics buffered per MLflow log_batch call

    def __post_init__(self) -> None:
        from components.common.classifier.models import ARCHS

        checks = [
            (self.arch in ARCHS, "arch", f"one of {list(ARCHS)}", self.arch),
            (self.image_size >= 16, "image_size", "≥ 16", self.image_size),
            (self.epochs >= 1, "epochs", "≥ 1", self.epochs),
            (self.min_steps >= 0, "min_steps", "≥ 0", self.min_steps),
            (self.batch_size >= 1, "batch_size", "≥ 1", self.batch_size),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {list(OPTIMIZERS)}", self.optimizer),
            (self.lr > 0, "lr", "> 0", self.lr),
            (0 <= self.dropout < 1, "dropout", "0 ≤ dropout < 1", self.dropout),
            (0 <= self.label_smoothing < 1, "label_smoothing", "0 ≤ value < 1", self.label_smoothing),
            (self.class_weights in ("none", "balanced"), "class_weights", "'none' or 'balanced'", self.class_weights),
            (self.sampler in SAMPLERS, "sampler", f"one of {list(SAMPLERS)}", self.sampler),
            (self.scheduler in SCHEDULERS, "scheduler", f"one of {list(SCHEDULERS)}", self.scheduler),
            (0 < self.warmup_fraction < 1, "warmup_fraction", "0 < value < 1", self.warmup_fraction),
            (self.min_epochs is None or self.min_epochs >= 0, "min_epochs", "≥ 0 or null", self.min_epochs),
            (self.keep_weights in KEEP_RULES, "keep_weights", f"one of {list(KEEP_RULES)}", self.keep_weights),
            (0 < self.keep_confidence < 1, "keep_confidence", "0 < value < 1", self.keep_confidence),
            (self.keep_resamples >= 1, "keep_resamples", "≥ 1", self.keep_resamples),
            (self.pretrained in PRETRAINED, "pretrained", f"one of {list(PRETRAINED)}", self.pretrained),
            (
                not (self.pretrained != "none" and self.pretrained_path),
                "pretrained",
                "'none' when pretrained_path is set (one source of weights)",
                self.pretrained,
            ),
            (
                not (self.pretrained != "none" and self.arch == "small_cnn"),
                "pretrained",
                "'none' for small_cnn (torchvision has no weights for it)",
                self.pretrained,
            ),
            (self.step_size >= 1, "step_size", "≥ 1", self.step_size),
            (0 < self.gamma <= 1, "gamma", "0 < gamma ≤ 1", self.gamma),
            (self.plateau_patience >= 0, "plateau_patience", "≥ 0", self.plateau_patience),
            (self.patience >= 0, "patience", "≥ 0", self.patience),
            (self.freeze_layers >= 0, "freeze_layers", "≥ 0", self.freeze_layers),
            (self.augment in AUGMENTS, "augment", f"one of {list(AUGMENTS)}", self.augment),
            (
                self.augment_orientation in ORIENTATIONS,
                "augment_orientation",
                f"one of {list(ORIENTATIONS)}",
                self.augment_orientation,
            ),
            (self.amp in ("auto", "off"), "amp", "'auto' or 'off'", self.amp),
            (self.loader in LOADERS, "loader", f"one of {list(LOADERS)}", self.loader),
            (self.num_workers >= 0, "num_workers", "≥ 0", self.num_workers),
            (0 <= self.gpu_memory_fraction <= 1, "gpu_memory_fraction", "in [0, 1]", self.gpu_memory_fraction),
            (self.log_every >= 1, "log_every", "≥ 1", self.log_every),
        ]
        for ok, name, expected, found in checks:
            if not ok:
                raise ConfigError(f"train_model.{name}: expected {expected}, found {found!r}")

    def planned(self, steps_per_epoch: int) -> TrainConfig:
        """This config with `epochs` raised so the run makes at least `min_steps` optimizer steps.

        A schedule is a number of updates, not of passes: 15 epochs are 500 steps on 2,000 patches
        but 30 on 112, where the network has barely left its initialisation. Small sets get more
        (cheap) epochs; large ones keep `epochs`. Deterministic in the data size, so a resumed run
        plans the same length."""
        needed = -(-self.min_steps // max(1, steps_per_epoch))
        return self if needed <= self.epochs else dataclasses.replace(self, epochs=needed)

    @property
    def epochs_before_stopping(self) -> int:
        """Epochs that always run before early stopping may end the run: `min_epochs`, or for
        `min_epochs: null` all of a fixed-length schedule (a OneCycle or cosine run cut short stops
        at a high learning rate, before the annealing that gives its best weights; the best epoch's
        weights are restored either way)."""
        if self.min_epochs is None:
            return self.epochs if self.scheduler in FIXED_LENGTH else 0
        return self.min_epochs
