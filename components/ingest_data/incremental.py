"""Reuse the previous manifest's rows for files that did not change (same size and mtime).

Hashing and decoding every photo on each run is the dominant cost of ingestion on a growing
dataset; like make/rsync we trust (size, mtime_ns) to say "unchanged". The previous rows are only
trusted when they were produced by the same row-affecting settings (`config_hash`), so changing
e.g. `max_image_pixels` re-reads everything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.io import read_json, records
from components.ingest_data.rows import ANNOTATION_FIELDS, BOX_FIELDS, IMAGE_FIELDS


@dataclass(frozen=True)
class Previous:
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    boxes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def load_previous(manifest: Path, report: Path, config_hash: str) -> Previous:
    """The reusable rows of an earlier run in the same out_dir, or nothing."""
    if not manifest.is_file() or not report.is_file():
        return Previous()
    try:
        if read_json(report).get("config_hash") != config_hash:
            return Previous()
        frame = pd.read_parquet(manifest)
    except (OSError, ValueError):
        return Previous()  # unreadable leftovers are just a cache miss
    if "mtime_ns" not in frame.columns:
        return Previous()
    images = {r["rel_path"]: r for r in records(frame[frame.row_type == "image"])}
    boxes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records(frame[frame.row_type == "box"]):
        boxes[r["rel_path"]].append({k: r[k] for k in BOX_FIELDS})
    return Previous(images, dict(boxes))


def reused_image(prev: Previous, rel: str, path: Path) -> dict[str, Any] | None:
    """The image half of the old row when the file has the same size and mtime."""
    row = prev.images.get(rel)
    if row is None:
        return None
    stat = path.stat()
    if row.get("file_size") != stat.st_size or row.get("mtime_ns") != stat.st_mtime_ns:
        return None
    if not set(IMAGE_FIELDS) <= row.keys():
        return None  # a manifest from before a field existed (exif_camera): read the file again
    return {k: row.get(k) for k in IMAGE_FIELDS}


def reused_annotation(
    prev: Previous, rel: str, ann_rel: str | None, fmt: str | None, mtime_ns: int | None
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The annotation half and boxes of the old row when the same file is unchanged."""
    row = prev.images.get(rel)
    if row is None or fmt in (None, "folder"):
        return None  # nothing to read anyway
    same = (row.get("annotation_path"), row.get("annotation_format"), row.get("annotation_mtime_ns"))
    if same != (ann_rel, fmt, mtime_ns):
        return None
    boxes = sorted(prev.boxes.get(rel, []), key=lambda b: int(b["box_index"]))
    return {k: row.get(k) for k in ANNOTATION_FIELDS}, boxes
