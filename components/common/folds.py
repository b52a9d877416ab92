"""The grouped k-fold table (`folds.parquet`: patient_id, repeat, fold) crop_patches writes and
crossval reads: the one check both sides apply to it."""

from __future__ import annotations

import pandas as pd

from components.common.errors import DataError


def check_folds(folds: pd.DataFrame, where: str) -> None:
    """Fail if a patient is held out in more than one fold of the same repeat (a patient leak)."""
    per_patient = folds.groupby(["repeat", "patient_id"])["fold"].nunique()
    leaked = sorted(set(per_patient[per_patient > 1].index.get_level_values("patient_id")))
    if leaked:
        raise DataError(where, f"patient leak across folds for {len(leaked)} patient(s): {leaked[:5]}")
