"""Patient-grouped, class-stratified repeated k-fold, as seed 002 evaluated (10 × 3-fold).

All patches are pooled regardless of their train/val/test split, as in the seed. Folds are
assigned per split group (a patient with the byte copies and near-duplicates of its photos; the
patient on tables without `split_group`), so no patient's patches, and no picture's copies, ever sit
on both sides of a fold boundary (patches of one lesion are near-duplicates; splitting them would
inflate the scores). The table stays one row per (repeat, patient), as evaluate_model reads it.
Repeat r shuffles with seed + r, so repeats differ yet every run reproduces exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.common.errors import ConfigError, DataError


@dataclass(frozen=True)
class KFoldConfig:
    enabled: bool = False
    folds: int = 3
    repeats: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"crop_patches.kfold.folds: must be ≥ 2, found {self.folds}")
        if self.repeats < 1:
            raise ConfigError(f"crop_patches.kfold.repeats: must be ≥ 1, found {self.repeats}")


def grouped_kfold(crops: pd.DataFrame, cfg: KFoldConfig) -> pd.DataFrame:
    """One row per (repeat, patient) with the fold that patient is held out in for that repeat;
    every patient of a split group is held out in the same fold."""
    from sklearn.model_selection import StratifiedGroupKFold  # 3 s to import: only when asked

    patients = crops["patient_id"].astype(str).to_numpy()
    unit = crops["split_group"] if "split_group" in crops.columns else crops["patient_id"]
    groups = unit.fillna(crops["patient_id"]).astype(str).to_numpy()
    n_groups = len(set(groups))
    if n_groups < cfg.folds:
        raise DataError(
            "patches",
            f"{n_groups} patient(s) or split groups cannot fill {cfg.folds} folds; "
            "lower crop_patches.kfold.folds or add patients",
        )
    labels = crops["label"].astype(str).to_numpy()
    rows = []
    for repeat in range(cfg.repeats):
        splitter = StratifiedGroupKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed + repeat)
        for fold, (_, test_idx) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
            for patient in np.unique(patients[test_idx]):
                rows.append((str(patient), repeat, fold))
    folds = pd.DataFrame(rows, columns=["patient_id", "repeat", "fold"])
    return folds.sort_values(["repeat", "patient_id"], kind="stable").reset_index(drop=True)


def fold_counts(crops: pd.DataFrame, folds: pd.DataFrame) -> dict:
    """{repeat: {fold: {class: n_crops}}} with str keys, every class listed (0 when absent)."""
    classes = sorted(crops["label"].astype(str).unique())
    merged = crops.assign(patient_id=crops["patient_id"].astype(str)).merge(folds, on="patient_id")
    table = merged.groupby(["repeat", "fold", "label"]).size()
    n_folds = int(folds["fold"].max()) + 1 if len(folds) else 0
    return {
        str(r): {str(f): {c: int(table.get((r, f, c), 0)) for c in classes} for f in range(n_folds)}
        for r in sorted(folds["repeat"].unique().tolist())
    }
