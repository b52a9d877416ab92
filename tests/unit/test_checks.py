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
IMG = {"rel_path": "a.jpg", "annotation_path": "a.xml", "width": 100, "height": 80,
       "declared_width": 100, "declared_height": 80, "image_error": None, "annotation_error": None}


def _box(x0: float, y0: float, x1: float, y1: float, label: str = "eczema", i: int = 0) -> dict[str, Any]:
    return {"box_index": i, "label_raw": label, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}


@pytest.mark.parametrize(("box", "codes", "kept"), [
    (_box(10, 10, 50, 50), [], True),
    (_box(float("nan"), 10, 50, 50), ["BOX_NOT_FINITE"], False),
    (_box(50, 10, 10, 50), ["BOX_INVERTED"], False),
    (_box(10, 10, 10, 50), ["BOX_ZERO_AREA"], False),
    (_box(10, 10, 130, 50), ["BOX_OUT_OF_BOUNDS"], False),
    (_box(0.5, 10, 101, 50), ["BOX_CLIPPED"], True),
    (_box(10, 10, 12, 50), ["BOX_TOO_SMALL"], False),
    (_box(10, 10, 50, 50, "acne"), ["LABEL_UNKNOWN"], False),
    (_box(10, 10, 50, 50, " PSO"), ["LABEL_NORMALIZED"], True),
])
def test_box_checks(box: dict[str, Any], codes: list[str], kept: bool) -> None:
    findings, clean = check_box(box, IMG, TASK, CFG)
    assert [f.code for f in findings] == codes
    assert (clean is not None) == kept
    assert all(f.file == "a.xml" and f.box_index == 0 for f in findings)


def test_clipped_box_is_inside_image() -> None:
    _, clean = check_box(_box(0.5, 10, 101, 50), IMG, TASK, CFG)
    assert clean is not None and (clean["xmin"], clean["xmax"]) == (1.0, 100.0)


def test_duplicates_near_duplicates_and_conflicts() -> None:
    boxes = [{**_box(10, 10, 50, 50, i=0), "label": "eczema"},
             {**_box(10, 10, 50, 50, i=1), "label": "eczema"},
             {**_box(11, 11, 51, 51, i=2), "label": "eczema"},
             {**_box(10, 10, 50, 50, i=3), "label": "psoriasis"},
             {**_box(60, 10, 90, 50, i=4), "label": "psoriasis"}]
    findings, kept = check_duplicates(boxes, "a.xml", CFG)
    assert [f.code for f in findings] == ["BOX_DUPLICATE", "BOX_NEAR_DUPLICATE", "BOX_LABEL_CONFLICT"]
    assert [b["box_index"] for b in kept] == [0, 4]


@pytest.mark.parametrize(("changes", "code"), [
    ({"image_error": "truncated"}, "IMAGE_CORRUPT"),
    ({"annotation_path": None}, "ANNOTATION_MISSING"),
    ({"annotation_error": "malformed XML"}, "XML_MALFORMED"),
    ({"declared_width": 80, "declared_height": 100}, "SIZE_MISMATCH"),
    ({"declared_width": 0}, "SIZE_MISSING"),
])
def test_image_checks(changes: dict[str, Any], code: str) -> None:
    assert code in [f.code for f in check_image({**IMG, **changes}, TASK, CFG)]


def test_swapped_size_is_explained() -> None:
    [finding] = check_image({**IMG, "declared_width": 80, "declared_height": 100}, TASK, CFG)
    assert "swapped" in finding.message and finding.severity == "error"
