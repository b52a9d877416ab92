import pandas as pd
import pytest

from components.common.errors import ConfigError, DataError
from components.common.split_groups import group_of, split_groups, summarize
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
    with pytest.raises(ConfigError, match="max_group_fraction"):
        SplitConfig(max_group_fraction=0)


def test_a_split_group_in_two_splits_is_a_leak_even_across_patients() -> None:
    frame = pd.DataFrame(
        {"patient_id": ["a", "b", "c"], "split_group": ["a", "a", "c"], "split": ["train", "test", "val"]}
    )
    with pytest.raises(DataError, match="split group leak.*'a'"):
        check_no_leak(frame, "crops.parquet")
    check_no_leak(frame.assign(split=["train", "train", "val"]), "crops.parquet")


def _row(rel: str, patient: str, sha: str | None = None, **kw: object) -> dict[str, object]:
    return {"rel_path": rel, "patient_id": patient, "sha256": sha or f"sha-{rel}", "image_error": None, **kw}


def test_split_groups_join_patients_byte_copies_and_look_alikes() -> None:
    rows = [
        _row("a.jpg", "P2"),
        _row("b.jpg", "P2"),  # one patient
        _row("c.jpg", "unknown:c.jpg", sha="s"),
        _row("d.jpg", "P9", sha="s"),  # byte copies
        _row("e.jpg", "unknown:e.jpg"),
        _row("f.jpg", "unknown:f.jpg"),
        _row("g.jpg", "P5"),
        _row("h.jpg", "P7"),
        _row("x.jpg", "P1", sha="s", image_error="truncated"),
    ]
    # e~f~g is a chain of look-alikes (e and g need not be close themselves); b~h
    groups = split_groups(rows, [("e.jpg", "f.jpg"), ("f.jpg", "g.jpg"), ("b.jpg", "h.jpg")])
    assert groups["a.jpg"] == groups["b.jpg"] == groups["h.jpg"] == ("P2", "phash")
    assert groups["c.jpg"] == groups["d.jpg"] == ("P9", "sha256")  # smallest patient id names the group
    assert groups["e.jpg"] == groups["f.jpg"] == groups["g.jpg"] == ("P5", "phash")
    assert groups["x.jpg"] == ("P1", "")  # an unreadable file's hash proves nothing
    assert split_groups(list(reversed(rows)), [("f.jpg", "g.jpg"), ("e.jpg", "f.jpg"), ("h.jpg", "b.jpg")]) == groups


def test_a_lone_patient_keeps_its_old_split() -> None:
    groups = split_groups([_row("a.jpg", "P3"), _row("b.jpg", "P3")], [])
    assert groups == {"a.jpg": ("P3", ""), "b.jpg": ("P3", "")}
    assert assign_split(groups["a.jpg"][0], CFG) == assign_split("P3", CFG)
    assert group_of({"patient_id": "P3"}) == group_of({"patient_id": "P3", "split_group": float("nan")}) == "P3"


def test_summary_lists_merged_groups_and_warns_on_a_chain() -> None:
    images = [
        {
            "rel_path": f"{i:02d}.jpg",
            "patient_id": f"P{i:02d}",
            "split_group": "P00" if i < 6 else f"P{i:02d}",
            "split_group_reason": "phash" if i < 6 else "",
        }
        for i in range(40)
    ]
    block, warnings = summarize(images, max_fraction=0.05)
    assert block["n_groups"] == 35 and block["n_merged_groups"] == 1 and block["n_images_in_merged_groups"] == 6
    assert block["largest"]["split_group"] == "P00" and block["examples"][0]["reason"] == "phash"
    assert len(warnings) == 1 and "'P00' holds 6 of 40 images" in warnings[0] and "phash" in warnings[0]
    assert summarize(images, max_fraction=0.2)[1] == []
    one_patient = [{**r, "patient_id": "P00"} if r["split_group"] == "P00" else r for r in images]
    assert summarize(one_patient, max_fraction=0.05) == (
        {
            **block,
            "n_merged_groups": 0,
            "n_images_in_merged_groups": 0,
            "n_patients_in_merged_groups": 0,
            "examples": [],
            "largest": {**block["largest"], "n_patients": 1},
        },
        [],
    )


def test_a_class_missing_from_a_split_is_reported() -> None:
    crops = pd.DataFrame(
        {"label": ["a", "a", "b", "b"], "split": ["train", "test", "train", "val"], "patient_id": ["1", "2", "3", "4"]}
    )
    warnings = thin_classes(crops, CFG, ("a", "b", "c"))
    assert len(warnings) == 2 and "'val'" in warnings[0] and "['a']" in warnings[0]
    assert "'test'" in warnings[1] and "['b']" in warnings[1]  # 'c' has no patient anywhere: not a split problem
    assert thin_classes(crops, SplitConfig(train=0.5, val=0.0, test=0.5), ("a", "b")) == [
        "split 'test' has no patient with class(es) ['b']; add patients or change crop_patches.split.salt"
    ]
