"""Dataset-wide checks, the GX contract and the accepted/quarantined invariant, on hand-made rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.common.task import TaskConfig
from components.validate_annotations import dataset_checks as ds
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import InvariantError, check_invariant

TASK = TaskConfig(name="t", classes=("eczema", "psoriasis"))
CFG = ValidateConfig()


def _img(rel: str, **kw: Any) -> dict[str, Any]:
    base = {
        "rel_path": rel,
        "source_uri": f"file:///data/{rel}",
        "sha256": rel.ljust(64, "0"),
        "patient_id": "P1",
        "patient_source": "metadata",
        "image_error": None,
        "phash": None,
        "declared_split": None,
        "xml_filename": Path(rel).name,
        "annotation_format": "voc",
        "annotation_path": str(Path(rel).with_suffix(".xml")),
        "annotation_error": None,
        "width": 100,
        "height": 80,
    }
    return {**base, **kw}


def _codes(findings: list[ds.Finding]) -> list[tuple[str, str, str | None]]:
    return [(f.code, f.severity, f.input_file) for f in findings]


def test_dataset_root_from_source_uri() -> None:
    assert ds.dataset_root([_img("images/a.jpg")]) == "file:///data"
    assert ds.dataset_root([{"rel_path": "a.jpg"}]) == "."


def test_exact_duplicates_keep_the_first_by_path() -> None:
    found = ds.duplicate_images(
        [
            _img("b.jpg", sha256="s"),
            _img("a.jpg", sha256="s"),
            _img("c.jpg", sha256="s"),
            _img("d.jpg", sha256="s", image_error="truncated"),
        ]
    )
    assert _codes(found) == [("IMAGE_DUPLICATE", "error", "b.jpg"), ("IMAGE_DUPLICATE", "error", "c.jpg")]
    assert "a.jpg" in found[0].message


@pytest.mark.parametrize(
    ("other", "distance", "found"),
    [("ffffffffffffffff", 0, True), ("fffffffffffffff0", 4, True), ("ffffffffffffff00", 8, False)],
)
def test_near_duplicates_by_phash_hamming(other: str, distance: int, found: bool) -> None:
    rows = [_img("a.jpg", phash="ffffffffffffffff"), _img("b.jpg", phash=other)]
    result = ds.near_duplicate_images(rows, CFG)
    assert _codes(result) == ([("IMAGE_NEAR_DUPLICATE", "warning", "b.jpg")] if found else [])
    if found:
        assert f"distance {distance}" in result[0].message


def test_near_duplicates_skip_exact_copies_and_missing_hashes() -> None:
    rows = [
        _img("a.jpg", phash="00ff00ff00ff00ff", sha256="s"),
        _img("b.jpg", phash="00ff00ff00ff00ff", sha256="s"),
        _img("c.jpg"),
        _img("d.jpg", phash="00ff00ff00ff00ff", image_error="x"),
    ]
    assert ds.near_duplicate_images(rows, CFG) == []


def test_patient_unknown_from_column_or_older_placeholder() -> None:
    rows = [
        _img("a.jpg", patient_source="unknown", patient_id="unknown:a"),
        {**_img("b.jpg", patient_id="unknown:b"), "patient_source": None},
        {**_img("c.jpg", patient_id="P9"), "patient_source": None},
        _img("d.jpg"),
    ]
    assert _codes(ds.patient_checks(rows)) == [
        ("PATIENT_UNKNOWN", "warning", "a.jpg"),
        ("PATIENT_UNKNOWN", "warning", "b.jpg"),
    ]


def test_patient_leak_across_declared_splits() -> None:
    rows = [
        _img("train/a.jpg", declared_split="train"),
        _img("train/b.jpg", declared_split="train"),
        _img("test/c.jpg", declared_split="test"),
        _img("d.jpg"),
        _img("val/e.jpg", declared_split="val", patient_id="P2"),
    ]
    found = ds.patient_checks(rows)
    assert _codes(found) == [("PATIENT_LEAK", "warning", "test/c.jpg")]
    assert "P1" in found[0].message and "train (2)" in found[0].message


def test_same_image_in_two_splits_is_a_leak_even_for_other_patients() -> None:
    rows = [
        _img("train/a.jpg", declared_split="train", sha256="s", patient_id="P1"),
        _img("test/a.jpg", declared_split="test", sha256="s", patient_id="P2"),
    ]
    found = ds.patient_checks(rows)
    assert [f.code for f in found] == ["PATIENT_LEAK"] and "same image" in found[0].message


def test_unknown_patients_do_not_leak() -> None:
    rows = [
        _img("train/a.jpg", declared_split="train", patient_source="unknown"),
        _img("test/b.jpg", declared_split="test", patient_source="unknown"),
    ]
    assert [f.code for f in ds.patient_checks(rows)] == ["PATIENT_UNKNOWN", "PATIENT_UNKNOWN"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([_img("im/a.jpg")], []),
        ([_img("im/a.jpg", xml_filename="C:\\photos\\a.jpg")], []),
        ([_img("im/a.jpg", xml_filename="a.png")], [("FILENAME_MISMATCH", "warning", "im/a.jpg")]),
        ([_img("im/a.jpg", xml_filename="a")], [("FILENAME_MISMATCH", "warning", "im/a.jpg")]),
        ([_img("im/a.jpg", xml_filename="b.jpg"), _img("im/b.jpg")], [("FILENAME_MISMATCH", "error", "im/a.jpg")]),
        ([_img("im/a.jpg", xml_filename="zzz.jpg")], [("FILENAME_MISMATCH", "error", "im/a.jpg")]),
        (
            [_img("im/a.jpg", xml_filename="a.bmp"), _img("im/a.png", xml_filename="a.png")],
            [("FILENAME_MISMATCH", "error", "im/a.jpg")],
        ),
        ([_img("im/a.jpg", xml_filename=None)], []),
        ([_img("im/a.jpg", xml_filename="b.jpg", annotation_format="yolo")], []),
    ],
)
def test_filename_mismatch(rows: list[dict[str, Any]], expected: list[tuple[str, str, str]]) -> None:
    found = ds.filename_checks(rows)
    assert _codes(found) == expected
    assert all(f.file == "im/a.xml" for f in found)


def test_classes_txt_conflict_names_the_odd_folder() -> None:
    rows = [_img(f"a/{i}.jpg", classes_txt="eczema,psoriasis", classes_txt_path="a/classes.txt") for i in range(2)]
    rows += [
        _img("b/0.jpg", classes_txt="eczema,psoriasis", classes_txt_path="b/classes.txt"),
        _img("c/0.jpg", classes_txt="psoriasis,eczema", classes_txt_path="c/classes.txt"),
        _img("d.jpg"),
    ]
    found = ds.classes_txt_checks(rows)
    assert [(f.code, f.severity, f.file, f.input_file) for f in found] == [
        ("CLASSES_TXT_CONFLICT", "warning", "c/classes.txt", None)
    ]
    assert ds.classes_txt_checks(rows[:3]) == []


def test_orphan_annotations_are_quarantined() -> None:
    found = ds.orphan_annotations([{"rel_path": "a.xml", "annotation_format": "voc"}])
    assert _codes(found) == [("IMAGE_MISSING", "error", "a.xml")]


def _abox(rel: str, i: int, side: float, label: str = "eczema") -> dict[str, Any]:
    return {
        "rel_path": rel,
        "box_index": i,
        "label": label,
        "xmin": 1.0,
        "ymin": 1.0,
        "xmax": 1.0 + side,
        "ymax": 1.0 + side,
    }


def test_box_size_outliers_per_class() -> None:
    images = {"a.jpg": _img("a.jpg", width=1000, height=1000)}
    boxes = [_abox("a.jpg", i, 40 + i) for i in range(25)] + [_abox("a.jpg", 99, 900)]
    found = ds.box_size_outliers(boxes, images, CFG)
    assert [(f.code, f.box_index, f.file) for f in found] == [("BOX_SIZE_OUTLIER", 99, "a.xml")]
    assert ds.box_size_outliers(boxes[:10] + boxes[-1:], images, CFG) == []  # too few to judge


@pytest.mark.parametrize(
    ("counts", "codes"),
    [
        ({"eczema": 50, "psoriasis": 60}, []),
        ({"eczema": 9, "psoriasis": 60}, ["CLASS_TOO_FEW"]),
        ({"eczema": 0, "psoriasis": 60}, ["CLASS_TOO_FEW", "CLASS_IMBALANCE"]),
        ({"eczema": 12, "psoriasis": 200}, ["CLASS_IMBALANCE"]),
        ({}, ["CLASS_TOO_FEW", "CLASS_TOO_FEW"]),
    ],
)
def test_class_balance(counts: dict[str, int], codes: list[str]) -> None:
    found = ds.class_balance(counts, TASK, CFG, "file:///data")
    assert [f.code for f in found] == codes
    assert all(f.severity == "warning" and f.file == "file:///data" and f.input_file is None for f in found)


def test_invariant() -> None:
    check_invariant(["a", "b", "c"], {"a"}, {"b", "c"})
    for accepted, quarantined in [({"a"}, {"b"}), ({"a", "b"}, {"b", "c"}), ({"a", "x"}, {"b", "c"})]:
        with pytest.raises(InvariantError):
            check_invariant(["a", "b", "c"], accepted, quarantined)
    with pytest.raises(InvariantError, match="twice"):
        check_invariant(["a", "a"], {"a"}, set())


def test_gx_contract_passes_clean_tables_and_names_violations(tmp_path: Path) -> None:
    from components.validate_annotations.contract import check_contract

    images = [_img("a.jpg", sha256="a" * 64), _img("b.jpg", sha256="b" * 64)]
    good = [{**_abox("a.jpg", 0, 20), "label": "eczema"}, {**_abox("b.jpg", 0, 30), "label": "psoriasis"}]
    findings, summary = check_contract(images, good, TASK, CFG, tmp_path / "ok")
    assert findings == [] and summary["accepted_boxes"]["success"] and summary["accepted_images"]["success"]
    assert (tmp_path / "ok" / "data_docs" / "index.html").is_file()

    bad = [*good, {**_abox("b.jpg", 1, 200), "label": "acne"}]  # beyond the image, unknown class
    findings, summary = check_contract(images, bad, TASK, CFG, tmp_path / "bad")
    assert {(f.code, f.severity, f.input_file) for f in findings} == {("CONTRACT_VIOLATION", "error", "b.jpg")}
    text = " ".join(f.message for f in findings)
    assert "expect_column_values_to_be_in_set" in text and "expect_column_pair_values_a_to_be_greater_than_b" in text
    assert not summary["accepted_boxes"]["success"]

    findings, _ = check_contract(images, [], TASK, CFG, tmp_path / "empty", root="file:///data")
    assert [(f.code, f.file, f.input_file) for f in findings] == [("CONTRACT_VIOLATION", "file:///data", None)]
    assert "expect_table_row_count_to_be_between" in findings[0].message


# --- byte copies and look-alikes: which copy is kept, and what the reviewer is told ---


def _ann(*boxes: tuple[str, float]) -> list[ds.Box]:
    return [(label, x, 1.0, x + 10, 11.0) for label, x in boxes]


def test_the_kept_copy_is_the_first_without_an_image_level_error() -> None:
    rows = [_img("a.jpg", sha256="s"), _img("b.jpg", sha256="s"), _img("c.jpg", sha256="s")]
    found = ds.duplicate_images(rows, broken={"a.jpg"})
    assert _codes(found) == [("IMAGE_DUPLICATE", "error", "a.jpg"), ("IMAGE_DUPLICATE", "error", "c.jpg")]
    assert all("same bytes as b.jpg" in f.message and "which is kept" in f.message for f in found)
    every_copy_broken = ds.duplicate_images(rows, broken={"a.jpg", "b.jpg", "c.jpg"})
    assert _codes(every_copy_broken)[0][2] == "b.jpg" and "itself quarantined" in every_copy_broken[0].message


@pytest.mark.parametrize(
    ("mine", "kept", "phrase"),
    [
        (
            _ann(("eczema", 1), ("psoriasis", 20)),
            _ann(("psoriasis", 20), ("eczema", 1)),
            "annotations identical (2 boxes)",
        ),
        (_ann(("eczema", 1)), _ann(("eczema", 5)), "same labels (eczema 1), boxes differ"),
        (
            _ann(("eczema", 1)),
            _ann(("eczema", 1), ("psoriasis", 30)),
            "this copy has 1 boxes (eczema 1), the kept one 2 (eczema 1, psoriasis 1)",
        ),
        ([], _ann(("eczema", 1)), "this copy has 0 boxes (none)"),
    ],
)
def test_duplicate_message_says_whether_the_annotations_agree(mine: list, kept: list, phrase: str) -> None:
    rows = [_img("a.jpg", sha256="s"), _img("b.jpg", sha256="s")]
    [found] = ds.duplicate_images(rows, annotations={"a.jpg": kept, "b.jpg": mine})
    assert phrase in found.message and found.input_file == "b.jpg"


def test_check_dataset_keeps_a_good_copy_when_the_first_one_names_another_image() -> None:
    rows = [_img("a.jpg", sha256="s", xml_filename="zzz.jpg"), _img("b.jpg", sha256="s")]
    found = ds.check_dataset(rows, [], CFG)
    assert ("FILENAME_MISMATCH", "error", "a.jpg") in _codes(found)
    assert ("IMAGE_DUPLICATE", "error", "a.jpg") in _codes(found)
    assert all(f.input_file != "b.jpg" for f in found if f.quarantines)


def test_near_duplicate_pairs_are_all_found_not_only_the_closest() -> None:
    # a-b 2 bits, b-c 2 bits, a-c 4 bits, d far from everything; e is a byte copy of a
    rows = [
        _img("a.jpg", phash="ffffffffffffffff", sha256="sa"),
        _img("b.jpg", phash="fffffffffffffffc"),
        _img("c.jpg", phash="fffffffffffffff0"),
        _img("d.jpg", phash="0000000000000000"),
        _img("e.jpg", phash="ffffffffffffffff", sha256="sa"),
    ]
    pairs = [(a["rel_path"], b["rel_path"], d) for a, b, d in ds.near_duplicate_pairs(rows, CFG)]
    assert pairs == [
        ("a.jpg", "b.jpg", 2),
        ("a.jpg", "c.jpg", 4),
        ("b.jpg", "c.jpg", 2),
        ("b.jpg", "e.jpg", 2),
        ("c.jpg", "e.jpg", 4),
    ]
    found = ds.near_duplicate_images(rows, CFG)
    assert _codes(found) == [("IMAGE_NEAR_DUPLICATE", "warning", p) for p in ("b.jpg", "c.jpg", "e.jpg")]
    assert "looks like b.jpg and 1 other image(s) (perceptual-hash distance 2" in found[1].message


def test_gx_contract_exempts_boxes_kept_only_for_the_detector(tmp_path: Path) -> None:
    from components.validate_annotations.contract import check_contract

    images = [_img("a.jpg", sha256="a" * 64)]
    tiny = {**_abox("a.jpg", 0, 2), "label": "eczema"}
    findings, _ = check_contract(images, [{**tiny, "for_patches": False}], TASK, CFG, tmp_path / "ok")
    assert findings == []
    findings, _ = check_contract(images, [{**tiny, "for_patches": True}], TASK, CFG, tmp_path / "bad")
    assert {(f.code, f.input_file) for f in findings} == {("CONTRACT_VIOLATION", "a.jpg")}


def test_a_kept_gx_project_saves_the_suites_and_accumulates_validation_runs(tmp_path: Path) -> None:
    """validate_annotations.gx_project: the second and third runs reuse the saved suites and assets;
    every run's results stay in the project and its Data Docs; a taxonomy change updates the suite."""
    from dataclasses import replace

    from components.validate_annotations.contract import check_contract

    cfg = replace(CFG, gx_project=str(tmp_path / "gx_project"))
    images = [_img("a.jpg", sha256="a" * 64), _img("b.jpg", sha256="b" * 64)]
    boxes = [{**_abox("a.jpg", 0, 20), "label": "eczema"}, {**_abox("b.jpg", 0, 30), "label": "psoriasis"}]
    assert check_contract(images, boxes, TASK, cfg, tmp_path / "run1")[0] == []
    bad = [*boxes, {**_abox("b.jpg", 1, 20), "label": "acne"}]
    assert {f.code for f in check_contract(images, bad, TASK, cfg, tmp_path / "run2")[0]} == {"CONTRACT_VIOLATION"}
    wider = TaskConfig(name="t", classes=("eczema", "psoriasis", "acne"))
    assert check_contract(images, bad, wider, cfg, tmp_path / "run3")[0] == []  # the suite was updated

    gx_root = tmp_path / "gx_project" / "gx"
    assert {p.stem for p in (gx_root / "expectations").glob("*.json")} == {"accepted_images", "accepted_boxes"}
    runs = list((gx_root / "uncommitted" / "validations" / "accepted_boxes").rglob("*.json"))
    assert len(runs) == 3
    docs = list((tmp_path / "run3" / "data_docs" / "validations" / "accepted_boxes").rglob("*.html"))
    assert len(docs) == 3  # this run's Data Docs show the earlier runs too
