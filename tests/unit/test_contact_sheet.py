from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.common.errors import ConfigError, DataError
from components.crop_patches.contact_sheet import (
    BACKGROUND,
    CELL,
    GAP,
    make_contact_sheet,
    row_top,
    split_counts,
    thumbs_left,
)

RED, GREEN, BLUE, GREY = (220, 30, 30), (30, 200, 30), (30, 30, 220), (90, 90, 90)
# patch_id, label, split, augment, colour
PATCHES = [
    ("a0", "alpha", "val", "none", GREY),
    ("a1", "alpha", "train", "flip", GREY),
    ("a2", "alpha", "train", "none", RED),
    ("a3", "alpha", "test", "none", GREY),
    ("b0", "beta", "train", "none", GREEN),
    ("b1", "beta", "train", "none", BLUE),
]


@pytest.fixture()
def patches(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    root = tmp_path / "patches"
    rows = []
    for pid, label, split, augment, colour in PATCHES:
        rel = f"{split}/{label}/{pid}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), colour).save(root / rel)
        rows.append({"patch_id": pid, "patch_path": rel, "label": label, "split": split, "augment": augment})
    return pd.DataFrame(rows), root


def region(sheet: Image.Image, row: int, per_class: int, title: str = "") -> np.ndarray:
    """Pixels of the thumbnail area of one class row."""
    left, top = thumbs_left(sheet.width, per_class), row_top(row, title)
    return np.asarray(sheet)[top : top + CELL, left : left + per_class * (CELL + GAP) - GAP]


def centre(sheet: Image.Image, row: int, slot: int, per_class: int) -> tuple:
    x = thumbs_left(sheet.width, per_class) + slot * (CELL + GAP) + CELL // 2
    return sheet.getpixel((x, row_top(row, "") + CELL // 2))


def test_sheet_opens_and_rows_hold_thumbnails(patches: tuple, tmp_path: Path) -> None:
    frame, root = patches
    out = make_contact_sheet(frame, root, ("alpha", "beta"), 2, tmp_path / "sheet.png", title="v1")
    assert out == tmp_path / "sheet.png"
    with Image.open(out) as sheet:
        assert sheet.format == "PNG" and sheet.mode == "RGB"
        assert (region(sheet, 0, 2, "v1") != BACKGROUND).any()
        assert (region(sheet, 1, 2, "v1") != BACKGROUND).any()
    assert not list(tmp_path.glob(".sheet.png.*"))  # no temp file left behind


def test_selection_prefers_train_unaugmented_by_patch_id(patches: tuple, tmp_path: Path) -> None:
    frame, root = patches
    with Image.open(make_contact_sheet(frame, root, ("alpha", "beta"), 1, tmp_path / "s.png")) as sheet:
        assert centre(sheet, 0, 0, 1) == RED  # a2: train + none beats val a0 and augmented a1
        assert centre(sheet, 1, 0, 1) == GREEN  # b0 before b1


@pytest.mark.parametrize(
    ("small", "large", "axis"),
    [
        ((("alpha",), 2), (("alpha", "beta"), 2), 1),
        ((("alpha",), 2), (("alpha", "beta", "gamma"), 2), 1),
        ((("alpha", "beta"), 1), (("alpha", "beta"), 3), 0),
    ],
)
def test_size_grows_with_classes_and_per_class(
    patches: tuple, tmp_path: Path, small: tuple, large: tuple, axis: int
) -> None:
    frame, root = patches
    sizes = []
    for i, (classes, per_class) in enumerate((small, large)):
        with Image.open(make_contact_sheet(frame, root, classes, per_class, tmp_path / f"{i}.png")) as sheet:
            sizes.append(sheet.size)
    assert sizes[1][axis] > sizes[0][axis]
    if axis == 0:
        assert sizes[1][0] - sizes[0][0] == 2 * (CELL + GAP)


def test_empty_class_row_is_present_and_blank(patches: tuple, tmp_path: Path) -> None:
    frame, root = patches
    classes = ("alpha", "gamma", "beta")
    with Image.open(make_contact_sheet(frame, root, classes, 3, tmp_path / "s.png")) as sheet:
        assert sheet.height == row_top(3, "") - GAP + 8
        assert (region(sheet, 1, 3) == BACKGROUND).all()  # gamma: no thumbnails
        assert (region(sheet, 0, 3) != BACKGROUND).any()
        label_cell = np.asarray(sheet)[row_top(1, "") : row_top(1, "") + CELL, : thumbs_left(sheet.width, 3)]
        assert (label_cell != BACKGROUND).any()  # ... but its name and "no patches" are drawn


def test_same_input_same_bytes(patches: tuple, tmp_path: Path) -> None:
    frame, root = patches
    first = make_contact_sheet(frame, root, ("alpha", "beta"), 2, tmp_path / "a.png", title="t")
    second = make_contact_sheet(
        frame.sample(frac=1, random_state=3), root, ("alpha", "beta"), 2, tmp_path / "b.png", title="t"
    )
    assert first.read_bytes() == second.read_bytes()
    other = make_contact_sheet(frame, root, ("beta", "alpha"), 2, tmp_path / "c.png", title="t")
    assert other.read_bytes() != first.read_bytes()


def test_augment_column_optional(patches: tuple, tmp_path: Path) -> None:
    frame, root = patches
    with Image.open(
        make_contact_sheet(frame.drop(columns="augment"), root, ("alpha",), 1, tmp_path / "s.png")
    ) as sheet:
        assert centre(sheet, 0, 0, 1) == GREY  # without augment info a1 (train) comes first


def test_split_counts_text(patches: tuple) -> None:
    frame, _ = patches
    assert split_counts(frame, "alpha") == "train 2 · val 1 · test 1"
    assert split_counts(frame, "beta") == "train 2 · val 0 · test 0"


def test_missing_patch_file_named(patches: tuple, tmp_path: Path) -> None:
    frame, root = patches
    (root / "train/beta/b0.png").unlink()
    with pytest.raises(DataError, match="b0.png"):
        make_contact_sheet(frame, root, ("alpha", "beta"), 2, tmp_path / "s.png")


@pytest.mark.parametrize(("classes", "per_class"), [((), 2), (("alpha",), -1)])
def test_bad_arguments_refused(patches: tuple, tmp_path: Path, classes: tuple, per_class: int) -> None:
    frame, root = patches
    with pytest.raises(ConfigError):
        make_contact_sheet(frame, root, classes, per_class, tmp_path / "s.png")


def test_zero_per_class_gives_counts_only(patches: tuple, tmp_path: Path) -> None:
    frame, root = patches
    with Image.open(make_contact_sheet(frame, root, ("alpha", "beta"), 0, tmp_path / "s.png")) as sheet:
        assert sheet.width < CELL + 200 and sheet.height == row_top(2, "") - GAP + 8
        assert (np.asarray(sheet) != BACKGROUND).any()  # names and counts are drawn
