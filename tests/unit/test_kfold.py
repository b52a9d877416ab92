import json

import pandas as pd
import pytest

from components.common.errors import ConfigError, DataError
from components.common.folds import check_folds
from components.crop_patches.kfold import KFoldConfig, fold_counts, grouped_kfold


def make_crops(n_patients: int, per_patient: int = 3) -> pd.DataFrame:
    """Each patient has one class (as a lesion does), classes mel:nev:bcc ≈ 3:2:1, mixed splits."""
    labels = ("mel", "mel", "mel", "nev", "nev", "bcc")
    rows = [
        {
            "patch_id": f"{p:08x}{k:08x}",
            "patient_id": f"P{p:03d}",
            "label": labels[p % len(labels)],
            "split": ("train", "val", "test")[p % 3],
        }
        for p in range(n_patients)
        for k in range(per_patient + p % 2)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("n_patients", "folds", "repeats"), [(60, 3, 10), (12, 2, 3), (30, 5, 2)])
def test_every_patient_in_exactly_one_fold_per_repeat(n_patients: int, folds: int, repeats: int) -> None:
    crops = make_crops(n_patients)
    result = grouped_kfold(crops, KFoldConfig(enabled=True, folds=folds, repeats=repeats))
    assert list(result.columns) == ["patient_id", "repeat", "fold"]
    assert len(result) == n_patients * repeats
    assert not result[["repeat", "patient_id"]].duplicated().any()
    assert result["fold"].between(0, folds - 1).all()
    for _, one in result.groupby("repeat"):
        assert set(one["patient_id"]) == set(crops["patient_id"])
        assert one["fold"].nunique() == folds
    check_folds(result, "folds.parquet")


def test_repeats_differ_and_seed_reproduces() -> None:
    crops = make_crops(60)
    cfg = KFoldConfig(folds=3, repeats=4, seed=7)
    result = grouped_kfold(crops, cfg)
    by_repeat = [tuple(one.sort_values("patient_id")["fold"]) for _, one in result.groupby("repeat")]
    assert len(set(by_repeat)) == len(by_repeat)
    pd.testing.assert_frame_equal(result, grouped_kfold(crops, cfg))
    other = grouped_kfold(crops, KFoldConfig(folds=3, repeats=4, seed=8))
    assert not result.equals(other)


def test_pools_all_splits() -> None:
    crops = make_crops(30)
    result = grouped_kfold(crops, KFoldConfig(folds=3, repeats=1))
    assert set(result["patient_id"]) == set(crops["patient_id"])  # val/test patients included


def test_stratification_is_roughly_balanced() -> None:
    crops = make_crops(90)
    result = grouped_kfold(crops, KFoldConfig(folds=3, repeats=3))
    counts = fold_counts(crops, result)
    overall = crops["label"].value_counts(normalize=True)
    for per_fold in counts.values():
        for per_class in per_fold.values():
            total = sum(per_class.values())
            for label, n in per_class.items():
                assert n / total == pytest.approx(overall[label], abs=0.08)


def test_fold_counts_add_up_and_serialise() -> None:
    crops = make_crops(24)
    result = grouped_kfold(crops, KFoldConfig(folds=3, repeats=2))
    counts = fold_counts(crops, result)
    assert set(counts) == {"0", "1"} and set(counts["0"]) == {"0", "1", "2"}
    for per_fold in counts.values():
        assert sum(sum(c.values()) for c in per_fold.values()) == len(crops)
        assert all(set(c) == {"mel", "nev", "bcc"} for c in per_fold.values())
    assert json.loads(json.dumps(counts)) == counts


def test_too_few_patients_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"2 patient\(s\).*3 folds"):
        grouped_kfold(make_crops(2), KFoldConfig(folds=3))


def test_check_folds_catches_a_leak() -> None:
    folds = pd.DataFrame({"patient_id": ["a", "b", "a", "a", "b"], "repeat": [0, 0, 1, 1, 1], "fold": [0, 1, 0, 1, 1]})
    with pytest.raises(DataError, match="'a'"):
        check_folds(folds, "folds.parquet")
    check_folds(folds.iloc[:3], "folds.parquet")


@pytest.mark.parametrize(("kwargs", "field"), [({"folds": 1}, "folds"), ({"repeats": 0}, "repeats")])
def test_bad_config_is_refused(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"crop_patches\.kfold\.{field}"):
        KFoldConfig(**kwargs)


def test_a_split_group_is_held_out_in_one_fold() -> None:
    """Patients joined by a byte copy or a near-duplicate never sit on both sides of a fold."""
    crops = make_crops(60)
    crops["split_group"] = crops["patient_id"]
    joined = {"P001": "P000", "P002": "P000", "P010": "P007"}
    crops["split_group"] = crops["patient_id"].map(lambda p: joined.get(p, p))
    result = grouped_kfold(crops, KFoldConfig(folds=3, repeats=5))
    assert list(result.columns) == ["patient_id", "repeat", "fold"]
    fold = result.set_index(["repeat", "patient_id"])["fold"]
    for repeat in range(5):
        assert fold[(repeat, "P000")] == fold[(repeat, "P001")] == fold[(repeat, "P002")]
        assert fold[(repeat, "P007")] == fold[(repeat, "P010")]
