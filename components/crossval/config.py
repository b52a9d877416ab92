"""The `crossval` section of params.yaml: which models the grouped repeated k-fold trains, and how.
The networks themselves are configured by the `train_model` and `train_baseline` sections."""

from __future__ import annotations

from dataclasses import dataclass

from components.common.errors import ConfigError

MODELS = ("baseline", "cnn")


@dataclass(frozen=True)
class CrossvalConfig:
    """The `crossval` section of params.yaml."""

    enabled: bool = False  # off: the stage records that it was skipped (needs crop_patches.kfold.enabled)
    models: tuple[str, ...] = MODELS  # baseline and/or cnn
    max_folds: int = 0  # run only the first N (repeat, fold) pairs; 0 = all
    epochs: int | None = None  # cnn epochs per fold; null = train_model.epochs
    val_fraction: float = 0.2  # share of each fold's training patients kept for early stopping
    search_c: bool = False  # baseline: pick C per fold from train_baseline.c_grid on the val slice
    rebalance: bool = True  # balanced class weights for both models (oversampled copies are dropped)
    seed: int = 0  # validation-slice shuffling (fold r, f uses seed + 1000 r + f)

    def __post_init__(self) -> None:
        where = "crossval"
        if not self.models or set(self.models) - set(MODELS) or len(set(self.models)) != len(self.models):
            raise ConfigError(f"{where}.models: a non-empty list of distinct {list(MODELS)}, found {list(self.models)}")
        if self.max_folds < 0:
            raise ConfigError(f"{where}.max_folds: must be ≥ 0 (0 = all), found {self.max_folds}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"{where}.epochs: must be ≥ 1 or null, found {self.epochs}")
        if not 0 < self.val_fraction <= 0.5:
            raise ConfigError(f"{where}.val_fraction: expected 0 < value ≤ 0.5, found {self.val_fraction}")
