from typing import Any

import pytest

from components.common.task import TaskConfig
from components.validate_annotations.checks import (
    ValidateConfig,
    check_box,
    check_duplicates,
    check_image,
)

TASK = TaskConfig(name="t", classes=("eczema", "psoriasis"), aliases={"pso": "psoriasis"})
CFG = ValidateConfig()
IMG = {
    "rel_path": "a.jpg",
    "annotation_path": "a.xml",
    "width": 100,
    "height": 80,
    "declared_width": 100,
    "declared_height": 80,
    "image_error": None,
    "annotation_error": None,
}


def _box(x0: float, y0: float, x1: float, y1: float, label: str = "eczema", i: int = 0) -> dict[str, Any]:
    return {"box_index": i, "label_raw": label, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}


@pytest.mark.parametrize(
    ("box", "codes", "kept"),
    [
        (_box(10, 10, 50, 50), [], True),
        (_box(float("nan"), 10, 50, 50), ["BOX_NOT_FINITE"], False),
        (_box(50, 10, 10, 50), ["BOX_INVERTED"], False),
        (_box(10, 10, 10, 50), ["BOX_ZERO_AREA"], False),
        (_box(10, 10, 130, 50), ["BOX_OUT_OF_BOUNDS"], False),
        (_box(0.5, 10, 101, 50), ["BOX_CLIPPED"], True),
        (_box(10, 10, 12, 50), ["BOX_TOO_SMALL"], True),  # kept for the detector, not for patches
        (_box(10, 10, 50, 50, "acne"), ["LABEL_UNKNOWN"], False),
        (_box(10, 10, 50, 50, " PSO"), ["LABEL_NORMALIZED"], True),
    ],
)
def test_box_checks(box: dict[str, Any], codes: list[str], kept: bool) -> None:
    findings, clean = check_box(box, IMG, TASK, CFG)
    assert [f.code for f in findings] == codes
    assert (clean is not None) == kept
    assert all(f.file == "a.xml" and f.box_index == 0 for f in findings)
    if clean is not None:
        assert clean["for_patches"] == ("BOX_TOO_SMALL" not in codes)
    # an error on a box drops that box only: it never quarantines the image
    assert all(f.drops_box and not f.quarantines for f in findings if f.severity == "error")


def test_clipped_box_is_inside_image() -> None:
    _, clean = check_box(_box(0.5, 10, 101, 50), IMG, TASK, CFG)
    assert clean is not None and (clean["xmin"], clean["xmax"]) == (1.0, 100.0)


def test_duplicates_near_duplicates_and_conflicts() -> None:
    boxes = [
        {**_box(10, 10, 50, 50, i=0), "label": "eczema"},
        {**_box(10, 10, 50, 50, i=1), "label": "eczema"},
        {**_box(11, 11, 51, 51, i=2), "label": "eczema"},
        {**_box(10, 10, 50, 50, i=3), "label": "psoriasis"},
        {**_box(60, 10, 90, 50, i=4), "label": "psoriasis"},
    ]
    findings, kept = check_duplicates(boxes, "a.xml", CFG)
    assert [(f.code, f.box_index) for f in findings] == [
        ("BOX_DUPLICATE", 1),
        ("BOX_NEAR_DUPLICATE", 2),
        ("BOX_LABEL_CONFLICT", 0),
        ("BOX_LABEL_CONFLICT", 3),
    ]
    assert [b["box_index"] for b in kept] == [4]  # nobody knows which label is right: both copies go


def test_a_third_copy_of_a_conflicting_box_is_dropped_too() -> None:
    same = (10, 10, 50, 50)
    boxes = [
        {**_box(*same, i=0), "label": "eczema"},
        {**_box(*same, i=1), "label": "psoriasis"},
        {**_box(*same, i=2), "label": "eczema"},
    ]
    findings, kept = check_duplicates(boxes, "a.xml", CFG)
    assert [(f.code, f.severity, f.box_index) for f in findings] == [
        ("BOX_LABEL_CONFLICT", "error", 0),
        ("BOX_LABEL_CONFLICT", "error", 1),
        ("BOX_LABEL_CONFLICT", "error", 2),
    ]
    assert kept == [] and "another class" in findings[2].message


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"image_error": "truncated"}, "IMAGE_CORRUPT"),
        ({"annotation_path": None}, "ANNOTATION_MISSING"),
        ({"annotation_error": "malformed XML"}, "XML_MALFORMED"),
        ({"declared_width": 80, "declared_height": 100}, "SIZE_MISMATCH"),
        ({"declared_width": 0}, "SIZE_MISSING"),
    ],
)
def test_image_checks(changes: dict[str, Any], code: str) -> None:
    assert code in [f.code for f in check_image({**IMG, **changes}, TASK, CFG)]


def test_swapped_size_is_explained() -> None:
    [finding] = check_image({**IMG, "declared_width": 80, "declared_height": 100}, TASK, CFG)
    assert "swapped" in finding.message and finding.severity == "error"


# --- every per-image code, branch by branch (manifest columns as the new ingest writes them) ---

FULL_IMG = {
    **IMG,
    "format": "JPEG",
    "mode": "RGB",
    "orientation": 1,
    "declared_depth": 3,
    "annotation_format": "voc",
    "image_error_code": None,
    "annotation_error_code": None,
    "image_label": None,
    "modality": "photo",
}


def _codes(img: dict[str, Any], task: TaskConfig = TASK, cfg: ValidateConfig = CFG) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in check_image(img, task, cfg)]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        (
            {"image_error": "cannot identify image file", "image_error_code": "IMAGE_CORRUPT"},
            [("IMAGE_CORRUPT", "error")],
        ),
        ({"image_error": "image too large", "image_error_code": "IMAGE_TOO_LARGE"}, [("IMAGE_TOO_LARGE", "error")]),
        # older manifests carry only the message
        ({"image_error": "truncated", "image_error_code": None}, [("IMAGE_CORRUPT", "error")]),
        ({"image_error": "Decompression bomb: 400000000 px"}, [("IMAGE_TOO_LARGE", "error")]),
        ({"annotation_path": None}, [("ANNOTATION_MISSING", "error")]),
        ({"annotation_error": "malformed XML", "annotation_error_code": "XML_MALFORMED"}, [("XML_MALFORMED", "error")]),
        ({"annotation_error": "unsafe XML refused", "annotation_error_code": "XML_UNSAFE"}, [("XML_UNSAFE", "error")]),
        ({"annotation_error": "unsafe XML refused (EntitiesForbidden)"}, [("XML_UNSAFE", "error")]),
        (
            {"annotation_error": "bad line 3", "annotation_error_code": "ANNOTATION_MALFORMED"},
            [("ANNOTATION_MALFORMED", "error")],
        ),
        ({"format": "PNG"}, [("EXTENSION_MISMATCH", "warning")]),
        ({"format": "MPO"}, []),
        ({"format": "DICOM", "modality": "dicom"}, []),
        ({"orientation": 6}, [("EXIF_ROTATED", "warning")]),
        ({"declared_width": 0}, [("SIZE_MISSING", "warning")]),
        ({"declared_width": None, "declared_height": None}, [("SIZE_MISSING", "warning")]),
        ({"declared_width": 80, "declared_height": 100}, [("SIZE_MISMATCH", "error")]),
        ({"declared_width": 120, "declared_height": 90}, [("SIZE_MISMATCH", "error")]),
        ({"declared_depth": 1}, [("DEPTH_MISMATCH", "warning")]),
        ({"declared_depth": 1, "mode": "L"}, []),
        ({"declared_depth": 4, "mode": "RGBA"}, []),
        ({"declared_depth": 0}, []),
        ({"annotation_format": "yolo", "declared_width": None}, []),  # YOLO has no <size>
        ({"image_label": "Psoriasis"}, [("LABEL_NORMALIZED", "info")]),
        ({"image_label": "acne"}, [("LABEL_UNKNOWN", "error")]),
        ({"image_label": "eczema"}, []),
    ],
)
def test_every_image_code(changes: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _codes({**FULL_IMG, **changes}) == expected


def test_unreadable_image_skips_size_and_format_checks() -> None:
    img = {**FULL_IMG, "image_error": "truncated", "format": "", "declared_width": 5, "orientation": 6}
    assert _codes(img) == [("IMAGE_CORRUPT", "error")]


def test_annotation_not_required_or_whole_image_task() -> None:
    no_ann = {**FULL_IMG, "annotation_path": None}
    assert _codes(no_ann, cfg=ValidateConfig(require_annotation=False)) == []
    whole = TaskConfig(name="t", classes=("eczema", "psoriasis"), sample="whole_image")
    assert _codes(no_ann, task=whole) == []


def test_exif_rotation_states_the_frame_and_rotated_size_is_explained() -> None:
    [rot] = check_image({**FULL_IMG, "orientation": 6}, TASK, CFG)
    assert "stored" in rot.message and "labelImg" in rot.message
    found = check_image({**FULL_IMG, "orientation": 6, "declared_width": 80, "declared_height": 100}, TASK, CFG)
    mismatch = next(f for f in found if f.code == "SIZE_MISMATCH")
    assert "EXIF-rotated view" in mismatch.message


@pytest.mark.parametrize(
    ("box", "codes", "severities"),
    [
        (_box(float("inf"), 10, 50, 50), ["BOX_NOT_FINITE"], ["error"]),
        ({**_box(10, 10, 50, 50), "xmin": None}, ["BOX_NOT_FINITE"], ["error"]),
        (_box(10, 50, 50, 10), ["BOX_INVERTED"], ["error"]),
        (_box(10, 10, 50, 10), ["BOX_ZERO_AREA"], ["error"]),
        (_box(10, 30, 50, 30), ["BOX_ZERO_AREA"], ["error"]),
        (_box(10, 10, 50, 82), ["BOX_OUT_OF_BOUNDS"], ["error"]),
        (_box(-1, 10, 50, 50), ["BOX_OUT_OF_BOUNDS"], ["error"]),
        (_box(10, 0, 50, 50), ["BOX_CLIPPED"], ["info"]),
        (_box(10, 10, 50, 81), ["BOX_CLIPPED"], ["info"]),
        (_box(10, 10, 13.9, 50), ["BOX_TOO_SMALL"], ["warning"]),
        (_box(10, 10, 14, 50), [], []),
        (_box(1, 1, 100, 80), ["BOX_SIZE_OUTLIER"], ["warning"]),
        (_box(1, 1, 95, 80), [], []),  # 93 % of the image: under the 95 % limit
        (_box(10, 10, 50, 50, "Lupus"), ["LABEL_UNKNOWN"], ["error"]),
        (_box(10, 10, 50, 50, "Psoriasis"), ["LABEL_NORMALIZED"], ["info"]),
        (_box(0.5, 10, 50, 50, "pso"), ["LABEL_NORMALIZED", "BOX_CLIPPED"], ["info", "info"]),
    ],
)
def test_every_box_code(box: dict[str, Any], codes: list[str], severities: list[str]) -> None:
    findings, _ = check_box(box, IMG, TASK, CFG)
    assert [f.code for f in findings] == codes
    assert [f.severity for f in findings] == severities


def test_tolerance_is_a_param() -> None:
    findings, clean = check_box(_box(10, 10, 50, 83), IMG, TASK, ValidateConfig(border_tolerance_px=3))
    assert [f.code for f in findings] == ["BOX_CLIPPED"] and clean is not None and clean["ymax"] == 80


def test_near_duplicate_threshold_and_messages() -> None:
    a = {**_box(10, 10, 50, 50, i=0), "label": "eczema"}
    b = {**_box(12, 10, 52, 50, i=1), "label": "eczema"}  # IoU 38/42 = 0.905
    findings, kept = check_duplicates([a, b], "a.xml", CFG)
    assert [f.code for f in findings] == ["BOX_NEAR_DUPLICATE"] and "IoU 0.90" in findings[0].message
    assert len(kept) == 1
    findings, kept = check_duplicates([a, b], "a.xml", ValidateConfig(near_duplicate_iou=0.95))
    assert findings == [] and len(kept) == 2
    conflict, kept = check_duplicates([a, {**b, "label": "psoriasis"}], "a.xml", CFG)
    assert [(f.code, f.severity, f.box_index) for f in conflict] == [
        ("BOX_LABEL_CONFLICT", "error", 0),
        ("BOX_LABEL_CONFLICT", "error", 1),
    ]
    assert kept == [] and all(f.drops_box and not f.quarantines for f in conflict)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # labelImg writes 1 when Qt calls the image grey: a grey-only RGB(A) file is consistent (info)
        ({"mode": "RGB", "declared_depth": 1, "grey_pixels": True}, [("DEPTH_MISMATCH", "info")]),
        ({"mode": "RGBA", "declared_depth": 1, "grey_pixels": True}, [("DEPTH_MISMATCH", "info")]),
        ({"mode": "RGB", "declared_depth": 1, "grey_pixels": False}, [("DEPTH_MISMATCH", "warning")]),
        ({"mode": "RGB", "declared_depth": 1, "grey_pixels": None}, [("DEPTH_MISMATCH", "warning")]),  # older manifest
        ({"mode": "RGB", "declared_depth": 1, "grey_pixels": float("nan")}, [("DEPTH_MISMATCH", "warning")]),
        ({"mode": "RGB", "declared_depth": 3, "grey_pixels": True}, []),
        # a palette image: 3 is what labelImg writes unless the palette is the identity grey ramp
        ({"mode": "P", "declared_depth": 3, "grey_pixels": True}, [("DEPTH_MISMATCH", "info")]),
        ({"mode": "P", "declared_depth": 1, "grey_pixels": True}, []),
        ({"mode": "P", "declared_depth": 1, "grey_pixels": False}, [("DEPTH_MISMATCH", "warning")]),
        ({"mode": "P", "declared_depth": 3, "grey_pixels": False}, []),
        ({"mode": "L", "declared_depth": 3, "grey_pixels": True}, [("DEPTH_MISMATCH", "warning")]),
        ({"mode": "I;16", "declared_depth": 1, "grey_pixels": True}, []),
    ],
)
def test_depth_is_judged_against_the_pixels(changes: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _codes({**FULL_IMG, **changes}) == expected


def test_config_refuses_impossible_values() -> None:
    from components.common.errors import ConfigError

    with pytest.raises(ConfigError, match="near_duplicate_iou"):
        ValidateConfig(near_duplicate_iou=0)
    with pytest.raises(ConfigError, match="max_quarantine_fraction"):
        ValidateConfig(max_quarantine_fraction=1.5)
    with pytest.raises(ConfigError, match="max_dropped_box_fraction"):
        ValidateConfig(max_dropped_box_fraction=-0.1)


def test_unknown_label_says_what_to_do() -> None:
    [finding], clean = check_box(_box(10, 10, 50, 50, "acne"), IMG, TASK, CFG)
    assert clean is None and "task.aliases" in finding.message and "'acne'" in finding.message
