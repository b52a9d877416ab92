"""Detection export: the raw accepted images and their boxes, per patient split, in COCO format.

A Faster R-CNN (torchvision) trains on whole images, not patches, so this export keeps the raw
pixels and the labelImg boxes. The split is the same split-group split as the patches, so a detector
and a patch classifier are evaluated on the same held-out patients. With `copy_images` the raw files
are hard-linked (copied across devices) into the export so a Kubeflow artifact is self-contained.

An image that lost a box to a box-level error (`detection_usable` False in the accepted table) is
left out: its unlabelled object would be learned as background. Photos annotated with no box at
all are true negatives and kept when `include_empty`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from components.common.errors import ConfigError, DataError
from components.common.io import records, write_json, write_parquet
from components.common.split_groups import group_of
from components.crop_patches.split import SPLITS

DETECTION_TABLE = "detection.parquet"
IMAGES_DIR = "images"
BOX_COLUMNS = [
    "rel_path",
    "sha256",
    "patient_id",
    "split_group",
    "split",
    "box_index",
    "label",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "width",
    "height",
]


@dataclass(frozen=True)
class DetectionConfig:
    """The `crop_patches.detection` section of params.yaml."""

    enabled: bool = True  # the stage only calls export_detection for box tasks
    copy_images: bool = True  # hard-link (or copy) raw images into the export
    include_empty: bool = True  # accepted images without boxes are kept as negatives


def coco_bbox(xmin: float, ymin: float, xmax: float, ymax: float) -> list[float]:
    """labelImg 1-based inclusive pixel box → COCO [x, y, w, h] in 0-based continuous coordinates.

    Pixel i (1-based) covers [i-1, i) continuously, so an inclusive box 1..10 spans 10 pixels from 0.
    """
    return [float(xmin) - 1, float(ymin) - 1, float(xmax - xmin + 1), float(ymax - ymin + 1)]


def voc_box(bbox: list[float] | tuple[float, ...]) -> tuple[float, float, float, float]:
    """Inverse of `coco_bbox`: COCO [x, y, w, h] → labelImg (xmin, ymin, xmax, ymax)."""
    x, y, w, h = (float(v) for v in bbox)
    return x + 1, y + 1, x + w, y + h


def _safe_rel(rel_path: str) -> str:
    """POSIX relative path that cannot escape the images folder of the export."""
    rel = PurePosixPath(str(rel_path).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DataError(str(rel_path), "rel_path must be relative and stay inside the dataset")
    return rel.as_posix()


def _usable(row: dict[str, Any]) -> bool:
    """`detection_usable` of an accepted image row; tables without the column: usable."""
    value = row.get("detection_usable")
    return True if value is None or value != value else bool(value)


def _images(accepted: pd.DataFrame, split_of: Callable[[str], str]) -> dict[str, dict[str, Any]]:
    """One entry per accepted image, keyed by rel_path, with its split (from its split group, or its
    patient on older tables) and empty box list."""
    out: dict[str, dict[str, Any]] = {}
    for row in records(accepted[accepted["row_type"] == "image"]):
        rel = _safe_rel(row["rel_path"])
        if rel in out:
            raise DataError(rel, "image listed twice in the accepted table")
        if row.get("width") is None or row.get("height") is None:
            raise DataError(rel, "accepted image has no width/height")
        group = group_of(row)
        split = split_of(group)
        if split not in SPLITS:
            raise ConfigError(f"crop_patches.detection: split_of returned {split!r}, expected one of {SPLITS}")
        out[rel] = {
            "rel_path": rel,
            "sha256": row["sha256"],
            "patient_id": str(row["patient_id"]),
            "split_group": group,
            "width": int(row["width"]),
            "height": int(row["height"]),
            "split": split,
            "boxes": [],
            "usable": _usable(row),
        }
    return out


def _attach_boxes(images: dict[str, dict[str, Any]], accepted: pd.DataFrame, classes: tuple[str, ...]) -> None:
    for row in records(accepted[accepted["row_type"] == "box"]):
        rel = _safe_rel(row["rel_path"])
        if rel not in images:
            raise DataError(rel, "box has no accepted image row (width/height unknown)")
        if row["label"] not in classes:
            raise DataError(rel, f"box label {row['label']!r} is not in task.classes {list(classes)}")
        x, y, w, h = coco_bbox(row["xmin"], row["ymin"], row["xmax"], row["ymax"])
        if w <= 0 or h <= 0:
            raise DataError(rel, f"box {int(row['box_index'])} has non-positive size {w}x{h}")
        images[rel]["boxes"].append({**row, "rel_path": rel, "box_index": int(row["box_index"])})
    for image in images.values():
        image["boxes"].sort(key=lambda b: b["box_index"])


def _link(src: Path, dst: Path) -> None:
    """Hard-link src to dst (a fresh copy when linking fails, e.g. across devices)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()  # stale from a previous run: never write through an old link
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _prune(images_dir: Path, keep: set[str]) -> None:
    """Delete files (and then empty folders) that a previous run exported but this one does not."""
    if not images_dir.is_dir():
        return
    for path in sorted(images_dir.rglob("*"), reverse=True):
        if path.is_file() or path.is_symlink():
            if path.relative_to(images_dir).as_posix() not in keep:
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _coco(images: list[dict[str, Any]], classes: tuple[str, ...], images_root: str) -> dict[str, Any]:
    """COCO document for one split; ids are 1-based and follow rel_path, then box_index."""
    doc: dict[str, Any] = {
        "info": {"description": "LesionOps detection export", "images_root": images_root},
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)],
        "images": [],
        "annotations": [],
    }
    for image_id, image in enumerate(images, start=1):
        doc["images"].append(
            {
                "id": image_id,
                "file_name": image["rel_path"],
                "width": image["width"],
                "height": image["height"],
                "sha256": image["sha256"],
                "patient_id": image["patient_id"],
            }
        )
        for box in image["boxes"]:
            bbox = coco_bbox(box["xmin"], box["ymin"], box["xmax"], box["ymax"])
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": classes.index(box["label"]) + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                    "box_index": box["box_index"],
                }
            )
    return doc


def export_detection(
    accepted: pd.DataFrame,
    source: Path,
    split_of: Callable[[str], str],
    classes: tuple[str, ...],
    cfg: DetectionConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Write `annotations_<split>.json`, `detection.parquet` and (optionally) `images/` under out_dir.

    `split_of` maps a split group (or patient) id to its split. Returns {split: {"images": n,
    "boxes": n, "per_class": {class: n}}} for the stage report, plus "negatives" (images without
    boxes kept) and "left_out_partial" (images that lost a box: how many, which).
    """
    images = _images(accepted, split_of)
    _attach_boxes(images, accepted, classes)
    partial = sorted(rel for rel, image in images.items() if not image["usable"])
    kept = [
        images[rel] for rel in sorted(images) if images[rel]["usable"] and (cfg.include_empty or images[rel]["boxes"])
    ]
    for image in kept:
        if not (source / image["rel_path"]).is_file():
            raise DataError(source / image["rel_path"], "accepted raw image is missing from the source")
    out_dir.mkdir(parents=True, exist_ok=True)
    images_dir = out_dir / IMAGES_DIR
    if cfg.copy_images:
        for image in kept:
            _link(source / image["rel_path"], images_dir / image["rel_path"])
        _prune(images_dir, {image["rel_path"] for image in kept})
    else:
        shutil.rmtree(images_dir, ignore_errors=True)  # a previous copying run must not linger
    images_root = IMAGES_DIR if cfg.copy_images else str(Path(source).resolve())
    summary: dict[str, Any] = {}
    for split in SPLITS:
        members = [image for image in kept if image["split"] == split]
        write_json(out_dir / f"annotations_{split}.json", _coco(members, classes, images_root))
        labels = [box["label"] for image in members for box in image["boxes"]]
        summary[split] = {
            "images": len(members),
            "boxes": len(labels),
            "per_class": {c: labels.count(c) for c in classes},
        }
    rows = [
        {
            **box,
            "split": image["split"],
            "patient_id": image["patient_id"],
            "sha256": image["sha256"],
            "split_group": image["split_group"],
            "width": image["width"],
            "height": image["height"],
        }
        for image in kept
        for box in image["boxes"]
    ]
    write_parquet(out_dir / DETECTION_TABLE, pd.DataFrame(rows, columns=BOX_COLUMNS))
    summary["negatives"] = sum(not image["boxes"] for image in kept)
    summary["left_out_partial"] = {"n": len(partial), "files": partial}
    return summary
