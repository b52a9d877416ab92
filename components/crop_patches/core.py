"""Crop accepted boxes (or whole images) into a balanced, group-split patch dataset with lineage.

Splits follow `split_group` (a patient joined with the byte copies and near-duplicates of its photos,
from validate_annotations; the patient id on older tables), so one picture can never sit in train
and test, for the patches, the k-fold groups and the detection export alike.

Patch files are content-addressed: a patch's id hashes its raw image sha256, its box and the
settings that shape its pixels (`CropConfig.pixel_hash`). A re-run therefore decodes only images
with a patch that does not exist yet; new split, balance or k-fold settings re-select patches
without re-cropping; files no longer referenced are pruned at the end.

Outputs: `crops.parquet` (every crop: the lineage table), `patches.parquet` (what training and
evaluation read: balanced train + natural val/test), `folds.parquet` (optional grouped k-fold),
`detection/` (raw images + COCO boxes per split), `contact_sheet.png` and `crop_report.json`. Every
crop and patch carries the skin tone around its lesion (ita, skin_tone: tone.py); the report has the
tone mix per split.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from rich.progress import track

from components.common.errors import DataError
from components.common.folds import check_folds
from components.common.io import records, write_json, write_parquet
from components.common.params import params_hash
from components.common.split_groups import group_of, summarize
from components.common.task import TaskConfig
from components.crop_patches.balance import augment_patch, balance, check_empty
from components.crop_patches.config import CropConfig
from components.crop_patches.contact_sheet import make_contact_sheet
from components.crop_patches.detection import export_detection
from components.crop_patches.geometry import Window, box_window
from components.crop_patches.kfold import fold_counts, grouped_kfold
from components.crop_patches.pixels import CropItem, ImageJob, crop_image, save
from components.crop_patches.split import SPLITS, assign_split, check_no_leak, thin_classes
from components.crop_patches.tone import TONE_KEY, add_skin_tone, tone_report

CROPS, PATCHES, FOLDS = "crops.parquet", "patches.parquet", "folds.parquet"
REPORT, SHEET, PATCH_DIR = "crop_report.json", "contact_sheet.png", "patches"


def patch_id(sha256: str, box_index: int, box: tuple[float, ...], pixel_hash: str) -> str:
    key = json.dumps([sha256, int(box_index), [float(v) for v in box], pixel_hash])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _box_rows(accepted: pd.DataFrame, whole: bool) -> list[dict[str, Any]]:
    """One row per crop with its image's size, orientation and split group (box rows do not carry them)."""
    images = {r["rel_path"]: r for r in records(accepted[accepted.row_type == "image"])}
    if whole:
        return [
            {
                **img,
                "box_index": -1,
                "xmin": 1.0,
                "ymin": 1.0,
                "xmax": float(img["width"]),
                "ymax": float(img["height"]),
                "split_group": group_of(img),
            }
            for img in images.values()
            if img.get("label")
        ]
    rows = []
    for box in records(accepted[accepted.row_type == "box"]):
        img = images.get(box["rel_path"], {})
        rows.append(
            {
                **box,
                "width": img.get("width"),
                "height": img.get("height"),
                "orientation": img.get("orientation") or 1,
                "body_site": img.get("body_site"),
                "camera": img.get("camera"),
                "split_group": group_of({**box, "split_group": img.get("split_group")}),
            }
        )
    return rows


def _for_patches(row: dict[str, Any]) -> bool:
    """False for boxes validation kept only for the detector (BOX_TOO_SMALL); older tables: True."""
    value = row.get("for_patches")
    return True if value is None or value != value else bool(value)


def plan(accepted: pd.DataFrame, cfg: CropConfig, task: TaskConfig, where: Path) -> tuple[pd.DataFrame, list]:
    """Every crop's id, window and split, computed from the table alone (no pixel is decoded)."""
    whole, pixel_hash = task.sample == "whole_image", cfg.pixel_hash()
    crops, skipped = [], []
    for row in _box_rows(accepted, whole):
        if row.get("width") is None or row.get("height") is None:
            raise DataError(where, f"{row['rel_path']}: no image row with width/height for this box")
        w, h = int(row["width"]), int(row["height"])
        box = (row["xmin"], row["ymin"], row["xmax"], row["ymax"])
        side = min(box[2] - box[0] + 1, box[3] - box[1] + 1)
        if not whole and (side < cfg.min_box_side or not _for_patches(row)):
            skipped.append({"rel_path": row["rel_path"], "box_index": int(row["box_index"]), "side": side})
            continue
        window = Window(0, 0, w, h) if whole else box_window(box, w, h, cfg.context_margin, cfg.shape, cfg.edge)
        pid = patch_id(str(row["sha256"]), int(row["box_index"]), box, pixel_hash)
        crops.append(
            {
                "patch_id": pid,
                "patch_path": f"{pid[:2]}/{pid}.{cfg.image_format}",
                "rel_path": row["rel_path"],
                "sha256": row["sha256"],
                "box_index": int(row["box_index"]),
                "label": row["label"],
                "patient_id": str(row["patient_id"]),
                "split_group": row["split_group"],
                "split": assign_split(row["split_group"], cfg.split),
                "xmin": box[0],
                "ymin": box[1],
                "xmax": box[2],
                "ymax": box[3],
                "window": [window.left, window.top, window.right, window.bottom],
                "image_width": w,
                "image_height": h,
                "orientation": int(row.get("orientation") or 1),
                "body_site": row.get("body_site") or None,  # metadata.csv's; evaluate_model reports per site
                "camera": row.get("camera") or None,  # metadata.csv's, else EXIF make and model
            }
        )
    frame = pd.DataFrame(crops)
    if frame.empty:
        raise DataError(where, "no accepted boxes to crop" if not whole else "no labelled images to resize")
    return frame.sort_values("patch_id").reset_index(drop=True), skipped


def _jobs(crops: pd.DataFrame, source: Path, root: Path) -> list[ImageJob]:
    """One job per raw image that still has a patch to write (existing patch files are reused)."""
    todo = crops[[not (root / p).is_file() for p in crops.patch_path]]
    jobs = []
    for rel, group in todo.groupby("rel_path", sort=True):
        first = group.iloc[0]
        items = tuple(CropItem(r.patch_id, Window(*r.window), str(root / r.patch_path)) for r in group.itertuples())
        jobs.append(
            ImageJob(str(source / rel), int(first.image_width), int(first.image_height), int(first.orientation), items)
        )
    return jobs


def _crop_all(jobs: list[ImageJob], cfg: CropConfig, whole: bool) -> tuple[int, list[dict[str, str]]]:
    """Run the jobs on a process pool sized to the machine; return (patches written, failures)."""
    if not jobs:
        return 0, []
    workers = min(cfg.workers or os.cpu_count() or 1, len(jobs))
    work = partial(crop_image, cfg=cfg, whole=whole)
    written, failures = 0, []
    if workers == 1:
        results: Iterator[tuple[str, int, str | None]] = map(work, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(work, jobs, chunksize=max(1, len(jobs) // (workers * 16)))
    try:
        for path, n, error in track(results, total=len(jobs), description="crop_patches"):
            written += n
            if error:
                failures.append({"file": path, "problem": error})
    finally:
        if workers > 1:
            pool.shutdown()
    return written, failures


def _copies(patches: pd.DataFrame, root: Path, cfg: CropConfig) -> int:
    """Write the augmented copies that balancing asked for (a flip of a small patch: cheap)."""
    made, path_of = 0, dict(zip(patches.patch_id, patches.patch_path))
    for row in patches[patches.augment != "none"].itertuples():
        target = root / row.patch_path
        if target.is_file():
            continue
        with Image.open(root / path_of[row.base_patch_id]) as img:
            save(augment_patch(img.convert("RGB"), row.augment), target, cfg)
        made += 1
    return made


def _prune(root: Path, keep: set[str]) -> int:
    """Delete patch files no current row references (old settings, removed images)."""
    pruned = 0
    for path in root.rglob("*"):
        if path.is_file() and path.relative_to(root).as_posix() not in keep:
            path.unlink()
            pruned += 1
    return pruned


def _empty_images(accepted: pd.DataFrame, cfg: CropConfig, whole: bool) -> dict[str, Any]:
    """Accepted photos annotated with no box at all: nothing to crop, but negatives for a detector."""
    if whole:
        return {"n": 0, "skipped_for_patches": 0, "detection_negatives": 0, "files": []}
    with_boxes = set(accepted.loc[accepted.row_type == "box", "rel_path"])
    images = accepted[accepted.row_type == "image"]
    lost = images.get("n_dropped_boxes", pd.Series(0, index=images.index)).fillna(0) > 0
    files = sorted(set(images.loc[~lost, "rel_path"]) - with_boxes)
    negatives = len(files) if cfg.detection.enabled and cfg.detection.include_empty else 0
    return {"n": len(files), "skipped_for_patches": len(files), "detection_negatives": negatives, "files": files}


def _counts(frame: pd.DataFrame, classes: tuple[str, ...], column: str = "label") -> dict[str, dict[str, int]]:
    out = {}
    for split in SPLITS:
        part = frame[frame.split == split]
        per = Counter(part[column]) if column == "label" else part.groupby("label")["patient_id"].nunique()
        out[split] = {c: int(per.get(c, 0)) for c in classes}
    return out


def run(cfg: CropConfig, task: TaskConfig, accepted_dir: Path, source: Path, out_dir: Path) -> pd.DataFrame:
    """Crop `accepted_dir/accepted.parquet` rows from images under `source` into `out_dir`."""
    table = accepted_dir / "accepted.parquet"
    if not table.is_file():
        raise DataError(table, "accepted table not found; run validate_annotations first")
    accepted = pd.read_parquet(table)
    crops, skipped = plan(accepted, cfg, task, table)
    unknown = sorted(set(crops.label) - set(task.classes))
    if unknown:
        raise DataError(table, f"labels {unknown} are not in task.classes {list(task.classes)}")
    check_no_leak(crops, str(out_dir / CROPS))
    root, whole = out_dir / PATCH_DIR, task.sample == "whole_image"
    written, failures = _crop_all(_jobs(crops, source, root), cfg, whole)
    failed = {f["file"] for f in failures}
    crops = crops[[str(source / r) not in failed for r in crops.rel_path]]
    crops = add_skin_tone(crops, accepted, source, out_dir / CROPS)
    patches, balance_report = balance(crops.drop(columns=[TONE_KEY]), task.classes, cfg.balance)
    groups_block, group_warnings = summarize(
        records(accepted[accepted.row_type == "image"]), cfg.split.max_group_fraction
    )
    warnings = thin_classes(crops, cfg.split, task.classes) + group_warnings
    warnings += check_empty(balance_report, cfg.balance, str(out_dir / PATCHES))
    copies = _copies(patches, root, cfg)
    patches = patches.assign(params_hash=params_hash(cfg), pixel_hash=cfg.pixel_hash())
    report: dict[str, Any] = {
        "n_crops": len(crops),
        "n_patches": len(patches),
        "cropped_now": written,
        "reused": len(crops) - written,
        "augmented_copies_written": copies,
        "skipped_small_boxes": skipped,
        "failed_images": failures,
        "warnings": warnings,
        "params_hash": params_hash(cfg),
        "pixel_hash": cfg.pixel_hash(),
        "per_split_class_counts": _counts(patches, task.classes),
        "crops_per_split_class": _counts(crops, task.classes),
        "patients_per_split_class": _counts(crops, task.classes, "patient_id"),
        "patients_per_split": {s: int(crops.loc[crops.split == s, "patient_id"].nunique()) for s in SPLITS},
        "split_groups_per_split": {s: int(crops.loc[crops.split == s, "split_group"].nunique()) for s in SPLITS},
        "split_groups": groups_block,
        "empty_images": _empty_images(accepted, cfg, whole),
        "skin_tone": tone_report(crops, SPLITS),
        "balance": balance_report,
    }
    if cfg.kfold.enabled:
        folds = grouped_kfold(crops, cfg.kfold)
        check_folds(folds, str(out_dir / FOLDS))
        write_parquet(out_dir / FOLDS, folds)
        report["kfold"] = {"folds": cfg.kfold.folds, "repeats": cfg.kfold.repeats, "counts": fold_counts(crops, folds)}
    if not whole and cfg.detection.enabled:
        report["detection"] = export_detection(
            accepted, source, lambda g: assign_split(g, cfg.split), task.classes, cfg.detection, out_dir / "detection"
        )
    report["pruned"] = _prune(root, set(patches.patch_path))
    write_parquet(out_dir / CROPS, crops)
    write_parquet(out_dir / PATCHES, patches)
    make_contact_sheet(
        patches,
        root,
        task.classes,
        cfg.contact_sheet_per_class,
        out_dir / SHEET,
        title=f"{task.name}: {len(patches)} patches",
    )
    write_json(out_dir / REPORT, report)
    if failures:
        raise DataError(
            failures[0]["file"],
            f"{failures[0]['problem']} — {len(failures)} image(s) failed to "
            f"crop (all listed in {out_dir / REPORT}); every other patch was written and is reused "
            "on the next run",
        )
    return patches
