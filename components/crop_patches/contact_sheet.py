"""A contact sheet PNG: one row per class, so a person can eyeball the patch dataset in seconds.

Wrong labels, empty crops and rotated photos show up at a glance where counts alone hide them. The
sheet is deterministic (same patches → same bytes) so it can live in DVC/MLflow without churn, and a
class with no patches gets a visible "no patches" row instead of silently disappearing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont, ImageOps

from components.common.errors import ConfigError, DataError
from components.crop_patches.split import SPLITS

CELL = 96  # thumbnail cell side in pixels
GAP = 4  # space between cells
MARGIN = 8  # outer margin and label padding
TITLE_H = 24  # title band height (only when a title is given)
ROW_H = CELL + GAP
MIN_LABEL_W = 160
BACKGROUND = (255, 255, 255)
BORDER = (160, 160, 160)
TEXT = (0, 0, 0)
MUTED = (150, 40, 40)


def split_counts(patches: pd.DataFrame, label: str) -> str:
    """'train 900 · val 40 · test 38' (splits outside SPLITS are appended so none go unseen)."""
    counts = patches.loc[patches["label"] == label, "split"].value_counts()
    order = list(SPLITS) + sorted(str(s) for s in counts.index if s not in SPLITS)
    return " · ".join(f"{s} {int(counts.get(s, 0))}" for s in order)


def pick(patches: pd.DataFrame, label: str, per_class: int) -> pd.DataFrame:
    """Deterministic sample: train before other splits, un-augmented first, then by patch_id."""
    rows = patches[patches["label"] == label].copy()
    rows["_split"] = (rows["split"] != "train").astype(int)
    rows["_aug"] = (rows["augment"] != "none").astype(int)
    return rows.sort_values(["_split", "_aug", "patch_id", "patch_path"], kind="mergesort").head(per_class)


def thumbnail(path: Path) -> Image.Image:
    """The patch fitted (aspect kept) inside a CELL square minus the border."""
    if not path.is_file():
        raise DataError(path, "patch listed in the patch table is missing")
    with Image.open(path) as img:
        return ImageOps.contain(img.convert("RGB"), (CELL - 4, CELL - 4), Image.Resampling.BILINEAR)


def thumbs_left(width: int, per_class: int) -> int:
    """x of the first thumbnail cell: thumbnails are right-aligned after the label column."""
    return width - MARGIN - per_class * (CELL + GAP) + GAP


def row_top(index: int, title: str) -> int:
    """y of the top of class row `index` (0-based, in `classes` order)."""
    return MARGIN + (TITLE_H if title else 0) + index * ROW_H


def _save_atomic(sheet: Image.Image, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            sheet.save(fh, format="PNG", optimize=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_contact_sheet(
    patches: pd.DataFrame, patch_root: Path, classes: tuple[str, ...], per_class: int, out: Path, title: str = ""
) -> Path:
    """Draw one row per class (label cell, then up to `per_class` thumbnails) and write the PNG."""
    if per_class < 0:
        raise ConfigError(f"contact sheet: per_class must be ≥ 0 (0 = counts only), found {per_class}")
    if not classes:
        raise ConfigError("contact sheet: no classes to show")
    patches = patches.copy()
    if "augment" not in patches.columns:
        patches["augment"] = "none"
    patches["augment"] = patches["augment"].fillna("none")
    if "patch_id" not in patches.columns:
        patches["patch_id"] = patches["patch_path"]
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = {c: (c, split_counts(patches, c) if (patches["label"] == c).any() else "no patches") for c in classes}
    text_w = max(probe.textlength(line, font=font) for pair in lines.values() for line in pair)
    label_w = max(MIN_LABEL_W, int(text_w) + 2 * MARGIN)
    width = MARGIN + label_w + max(per_class * (CELL + GAP) - GAP, 0) + MARGIN
    height = row_top(len(classes), title) - GAP + MARGIN
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((MARGIN, MARGIN), title, fill=TEXT, font=font)
    left = thumbs_left(width, per_class)
    for index, cls in enumerate(classes):
        top = row_top(index, title)
        name, counts = lines[cls]
        draw.text((MARGIN, top + CELL // 2 - 14), name, fill=TEXT, font=font)
        draw.text((MARGIN, top + CELL // 2 + 2), counts, fill=MUTED if counts == "no patches" else TEXT, font=font)
        for slot, rel in enumerate(pick(patches, cls, per_class)["patch_path"]):
            x = left + slot * (CELL + GAP)
            thumb = thumbnail(patch_root / str(rel))
            sheet.paste(thumb, (x + (CELL - thumb.width) // 2, top + (CELL - thumb.height) // 2))
            draw.rectangle((x, top, x + CELL - 1, top + CELL - 1), outline=BORDER, width=1)
    _save_atomic(sheet, out)
    return out
