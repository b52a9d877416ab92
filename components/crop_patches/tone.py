"""Skin tone of every crop: ITA° of the skin around the lesion, stored in crops.parquet.

A data version's tone mix is a fact about who the model will learn from (a dataset of light skin
makes a model that fails on dark skin), so it is measured once per raw image and carried with each
of its crops: the median ITA° of the pixels outside every labelImg box of that image (whole-image
tasks: the whole frame), on a reduced decode (components/common/skin_tone.py). Patch files are
reused between runs, but this pass decodes every image again at ≤ `MAX_SIDE` pixels, unless the
previous crops.parquet already measured the same image with the same boxes.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.common.skin_tone import ITA_COLUMN, TONE_COLUMN, TONE_NAMES, read_ita, tone_categories, tone_mix

MAX_SIDE = 256
TONE_KEY = "tone_key"


def _boxes_of(accepted: pd.DataFrame) -> dict[str, list[tuple[float, float, float, float]]]:
    """Every box of each image (also boxes too small to crop: they are lesion pixels all the same)."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    if not {"row_type", "xmin", "ymin", "xmax", "ymax"} <= set(accepted.columns):
        return boxes  # whole-image tasks: no boxes, the whole frame is measured
    rows = accepted[accepted.row_type == "box"]
    for rel, x0, y0, x1, y1 in zip(rows.rel_path, rows.xmin, rows.ymin, rows.xmax, rows.ymax, strict=True):
        boxes.setdefault(str(rel), []).append((float(x0), float(y0), float(x1), float(y1)))
    return boxes


def _key(sha256: str, boxes: list[tuple[float, float, float, float]]) -> str:
    return json.dumps([sha256, sorted(boxes)])


def _measure(job: tuple[Path, list[tuple[float, float, float, float]]]) -> float:
    try:
        return read_ita(job[0], job[1], MAX_SIDE)
    except DataError:
        return float("nan")  # a DICOM or unreadable file has no measured tone; cropping reports failures


def add_skin_tone(crops: pd.DataFrame, accepted: pd.DataFrame, source: Path, previous: Path) -> pd.DataFrame:
    """`crops` with ita (degrees, NaN when no skin was found) and skin_tone (Del Bino category)."""
    boxes = _boxes_of(accepted)
    images = crops.drop_duplicates("rel_path")[["rel_path", "sha256"]]
    keys = {str(r): _key(str(s), boxes.get(str(r), [])) for r, s in zip(images.rel_path, images.sha256, strict=True)}
    known: dict[str, float] = {}
    if previous.is_file():
        old = pd.read_parquet(previous)
        if {TONE_KEY, ITA_COLUMN} <= set(old.columns):
            known = dict(zip(old[TONE_KEY].astype(str), old[ITA_COLUMN].astype(float), strict=True))
    todo = [rel for rel, key in keys.items() if key not in known]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        measured = dict(
            zip(todo, pool.map(_measure, [(source / rel, boxes.get(rel, [])) for rel in todo]), strict=True)
        )
    ita = [measured[r] if r in measured else known[keys[r]] for r in crops.rel_path.astype(str)]
    return crops.assign(
        **{TONE_KEY: [keys[r] for r in crops.rel_path.astype(str)], ITA_COLUMN: ita, TONE_COLUMN: tone_categories(ita)}
    )


def tone_report(crops: pd.DataFrame, splits: tuple[str, ...]) -> dict[str, Any]:
    """Tone mix per split, counted per image (a photo with three boxes is one patient's skin once)."""
    images = crops.drop_duplicates("rel_path")
    out: dict[str, Any] = {"categories": list(TONE_NAMES), "per_split": {}}
    for split in splits:
        values = images.loc[images.split == split, ITA_COLUMN].to_numpy(float)
        finite = values[np.isfinite(values)]
        out["per_split"][split] = {
            "images": len(values),
            "measured": len(finite),
            "median_ita": round(float(np.median(finite)), 2) if len(finite) else None,
            "mix": tone_mix(finite),
        }
    return out
