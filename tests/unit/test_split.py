import pandas as pd
import pytest

from components.common.errors import ConfigError, DataError
from components.crop_patches.split import SplitConfig, assign_split, check_no_leak, thin_classes

CFG = SplitConfig()


def test_split_is_stable_when_patients_are_added() -> None:
    before = {p: assign_split(p, CFG) for p in (f"P{i}" for i in range(200))}
    after = {p: assign_split(p, CFG) for p in (f"P{i}" for i in range(1000))}
    assert all(after[p] == s for p, s in before.items())


def test_split_fractions_are_respected_and_salt_matters() -> None:
    splits = pd.Series([assign_split(f"P{i}", CFG) for i in range(5000)]).value_counts(normalize=True)
    assert splits["train"] == pytest.approx(0.6, abs=0.03)
    assert splits["test"] == pytest.approx(0.2, abs=0.03)
    other = SplitConfig(salt="other")
    assert any(assign_split(f"P{i}", CFG) != assign_split(f"P{i}", other) for i in range(50))


def test_leak_is_reported_with_patient() -> None:
    frame = pd.DataFrame({"patient_id": ["a", "a", "b"], "split": ["train", "test", "val"]})
    with pytest.raises(DataError, match="'a'"):
        check_no_leak(frame, "patches.parquet")
    check_no_leak(frame.iloc[1:], "patches.parquet")


def test_bad_fractions_refused() -> None:
    with pytest.raises(ConfigError):
        SplitConfig(train=0.7, val=0.2, test=0.2)


def test_a_class_missing_from_a_split_is_reported() -> None:
    crops = pd.DataFrame({"label": ["a", "a", "b", "b"], "split": ["train", "test", "train", "val"],
                          "patient_id": ["1", "2", "3", "4"]})
    warnings = thin_classes(crops, CFG, ("a", "b", "c"))
    assert len(warnings) == 2 and "'val'" in warnings[0] and "['a']" in warnings[0]
    assert "'test'" in warnings[1] and "['b']" in warnings[1]  # 'c' has no patient anywhere: not a split problem
    assert thin_classes(crops, SplitConfig(train=0.5, val=0.0, test=0.5), ("a", "b")) == [
        "split 'test' has no patient with class(es) ['b']; add patients or change crop_patches.split.salt"]
