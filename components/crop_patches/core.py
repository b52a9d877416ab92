"""Crop every accepted box into a fixed-size patch, split by patient, and record lineage.

Each image is decoded once for all its boxes. Patches never carry EXIF/GPS metadata: they are
re-encoded from pixels only. `patches.parquet` links every patch to its raw image sha256 and box.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from rich.progress import track

from components.common.errors import ConfigError, DataError
from components.common.images import load_rgb
from components.common.io import write_json, write_parquet
from components.common.params import params_hash
from components.common.task import TaskConfig
from components.crop_patches.split import SPLITS, SplitConfig, assign_split, check_no_leak

PATCHES = "patches.parquet"
REPORT = "crop_report.json"


@dataclass(frozen=True)
class CropConfig:
    """The `crop_patches` section of params.yaml."""

    patch_size: int = 64
    context_margin: float = 0.1  # fraction of the box side added on each side
    square: bool = True
    image_format: str = "jpg"
    jpeg_quality: int = 92
    workers: int = 0  # 0 = one per CPU core
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if self.patch_size < 8:
            raise ConfigError(f"crop_patches.patch_size: must be ≥ 8, found {self.patch_size}")
        if self.image_format not in ("jpg", "png"):
            raise ConfigError(f"crop_patches.image_format: 'jpg' or 'png', found {self.image_format!r}")


def crop_window(box: tuple[float, float, float, float], width: int, height: int,
                margin: float, square: bool) -> tuple[int, int, int, int]:
    """Pixel window (0-based, exclusive end) around a 1-based labelImg box, shifted inside the image."""
    x0, y0, x1, y1 = box[0] - 1, box[1] - 1, box[2], box[3]
    bw, bh = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = bw * (1 + 2 * margin), bh * (1 + 2 * margin)
    if square:
        w = h = max(w, h)
    w, h = min(w, width), min(h, height)
    left = min(max(cx - w / 2, 0), width - w)
    top = min(max(cy - h / 2, 0), height - h)
    return round(left), round(top), round(left + w), round(top + h)


def _crop_image(job: tuple[Path, list[dict[str, Any]], CropConfig, Path]) -> list[dict[str, Any]]:
    """Decode one image once and write all its patches (runs in a worker process)."""
    path, boxes, cfg, out_dir = job
    img = load_rgb(path)
    rows = []
    for b in boxes:
        window = crop_window((b["xmin"], b["ymin"], b["xmax"], b["ymax"]), img.width, img.height,
                             cfg.context_margin, cfg.square)
        patch = img.crop(window).resize((cfg.patch_size, cfg.patch_size), Image.Resampling.BILINEAR)
        name = f"{b['sha256'][:16]}_{int(b['box_index']):03d}.{cfg.image_format}"
        target = out_dir / b["split"] / b["label"] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if cfg.image_format == "jpg":
            patch.save(target, quality=cfg.jpeg_quality)
        else:
            patch.save(target)
        rows.append({**b, "patch_path": target.relative_to(out_dir).as_posix(),
                     "window": list(window)})
    return rows


def _jobs(accepted: pd.DataFrame, source: Path, cfg: CropConfig, out_dir: Path) -> list[tuple]:
    boxes = accepted[accepted.row_type == "box"].copy()
    boxes["split"] = boxes["patient_id"].map(lambda p: assign_split(str(p), cfg.split))
    cols = ["rel_path", "sha256", "box_index", "label", "patient_id", "split",
            "xmin", "ymin", "xmax", "ymax"]
    return [(source / rel, group[cols].to_dict("records"), cfg, out_dir / "patches")
            for rel, group in boxes.groupby("rel_path", sort=True)]


def run(cfg: CropConfig, task: TaskConfig, accepted_dir: Path, source: Path, out_dir: Path) -> pd.DataFrame:
    """Crop `accepted_dir/accepted.parquet` boxes from images under `source` into `out_dir`."""
    if task.sample != "patches":
        raise ConfigError(f"crop_patches: task.sample={task.sample!r} is not handled by this stage yet")
    path = accepted_dir / "accepted.parquet"
    if not path.is_file():
        raise DataError(path, "accepted table not found; run validate_annotations first")
    jobs = _jobs(pd.read_parquet(path), source, cfg, out_dir)
    if not jobs:
        raise DataError(path, "no accepted boxes to crop")
    shutil.rmtree(out_dir / "patches", ignore_errors=True)  # our own output: no stale patches
    workers = cfg.workers or os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for result in track(pool.map(_crop_image, jobs, chunksize=8), total=len(jobs),
                            description="crop_patches"):
            rows.extend(result)
    patches = pd.DataFrame(rows)
    patches["params_hash"] = params_hash(cfg)
    check_no_leak(patches, str(out_dir / PATCHES))
    write_parquet(out_dir / PATCHES, patches)
    counts = {s: dict(Counter(patches.loc[patches.split == s, "label"])) for s in SPLITS}
    write_json(out_dir / REPORT, {
        "n_patches": len(patches), "params_hash": params_hash(cfg),
        "per_split_class_counts": {s: {c: counts[s].get(c, 0) for c in task.classes} for s in SPLITS},
        "patients_per_split": {s: int(patches.loc[patches.split == s, "patient_id"].nunique()) for s in SPLITS},
    })
    return patches
