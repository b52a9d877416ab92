"""Turn a labelImg dataset (folder, .zip or S3 prefix) into one manifest table.

One row per image (`row_type == "image"`), one per box (`"box"`) and one per annotation whose image
is missing (`"annotation"`), each image carrying its file's sha256 so every later artefact can be
traced back to exact bytes. Nothing is judged here: unreadable images and annotations are recorded
with an error code and judged by `validate_annotations`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import track

from components.common.errors import DataError
from components.common.formats import SPLIT_NAMES
from components.common.io import write_json, write_parquet
from components.common.sources import StagedSource, stage_source
from components.ingest_data.config import IngestConfig
from components.ingest_data.discover import Inventory, Pairing, discover
from components.ingest_data.incremental import Previous, load_previous, reused_annotation, reused_image
from components.ingest_data.rows import (
    ANNOTATION_FIELDS,
    BOX_FIELDS,
    IMAGE_FIELDS,
    annotation_mtime,
    read_annotation,
    read_image,
)

MANIFEST = "manifest.parquet"
REPORT = "ingest_report.json"
_INT_COLUMNS = ("file_size", "mtime_ns", "annotation_mtime_ns")  # ns stamps do not survive float64
COLUMNS = (
    "row_type",
    "rel_path",
    "source_uri",
    "sha256",
    "file_size",
    "mtime_ns",
    "patient_id",
    "patient_source",
    "body_site",
    "label_source",
    "camera",
    *IMAGE_FIELDS[3:],
    *ANNOTATION_FIELDS,
    "declared_split",
    *BOX_FIELDS,
)


def _load_metadata(source: Path, cfg: IngestConfig) -> dict[str, dict[str, str]]:
    path = source / cfg.metadata_file
    if not path.is_file():
        return {}
    meta = pd.read_csv(path, dtype=str).fillna("")
    missing = {"filename", "patient_id"} - set(meta.columns)
    if missing:
        raise DataError(path, f"missing column(s) {sorted(missing)}; found {list(meta.columns)}")
    dupes = meta["filename"][meta["filename"].duplicated()].tolist()
    if dupes:
        raise DataError(path, f"filename listed more than once: {dupes[:5]}")
    return {r["filename"]: r for r in meta.to_dict("records")}


def _patient(rel: str, meta: dict[str, dict[str, str]], pattern: re.Pattern[str] | None) -> dict[str, str]:
    """metadata.csv (by file name or relative path) first, then the pattern on name or path."""
    name = rel.rsplit("/", 1)[-1]
    row = meta.get(rel) or meta.get(name) or {}
    extra = {k: row.get(k, "") for k in ("body_site", "label_source", "camera")}
    if row.get("patient_id"):
        return {"patient_id": row["patient_id"], "patient_source": "metadata", **extra}
    for text in (name, rel):
        if pattern and (m := pattern.search(text)) and m.groupdict().get("patient"):
            return {"patient_id": m.group("patient"), "patient_source": "pattern", **extra}
    # Its own group, keyed by the unique path, so it can never leak across splits.
    return {"patient_id": f"unknown:{rel}", "patient_source": "unknown", **extra}


def _declared_split(rel: str) -> str | None:
    folders = [p.lower() for p in rel.split("/")[:-1]]
    return next((p for p in reversed(folders) if p in SPLIT_NAMES), None)


def _ingest_one(
    pair: Pairing, root: Path, prev: Previous, cfg: IngestConfig, counts: dict[str, int]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Image and annotation halves of one image, each reused when its files are unchanged.

    Old boxes are kept only when the image half was reused too: YOLO boxes depend on image size.
    """
    image = reused_image(prev, pair.rel, pair.image)
    image_reused = image is not None
    counts["images_reused" if image_reused else "images_read"] += 1
    if image is None:
        image = read_image(pair.image, cfg.max_image_pixels, cfg.decode)
    ann_rel = pair.ann_path.relative_to(root).as_posix() if pair.ann_path else None
    old = (
        reused_annotation(prev, pair.rel, ann_rel, pair.ann_format, annotation_mtime(pair, root))
        if image_reused
        else None
    )
    if old is not None:
        counts["annotations_reused"] += 1
        return {**image, **old[0]}, old[1]
    if pair.ann_format not in (None, "folder"):
        counts["annotations_read"] += 1
    ann, boxes = read_annotation(pair, root, image)
    return {**image, **ann}, boxes


def _rows(
    inv: Inventory, staged: StagedSource, prev: Previous, cfg: IngestConfig, meta: dict[str, dict[str, str]]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    pattern = re.compile(cfg.patient_pattern) if cfg.patient_pattern else None
    counts = dict.fromkeys(("images_read", "images_reused", "annotations_read", "annotations_reused"), 0)
    rows: list[dict[str, Any]] = []
    for pair in track(inv.pairs, description="ingest_data"):
        fields, boxes = _ingest_one(pair, staged.root, prev, cfg, counts)
        uri = staged.uri_of(pair.image)
        image_row = {
            "row_type": "image",
            "rel_path": pair.rel,
            "source_uri": uri,
            **_patient(pair.rel, meta, pattern),
            **fields,
            "declared_split": _declared_split(pair.rel),
        }
        # metadata.csv's camera (or source) first, else what the file's EXIF / DICOM header says
        image_row["camera"] = image_row["camera"] or image_row.get("exif_camera") or ""
        rows.append(image_row)
        shared = {k: image_row[k] for k in ("rel_path", "sha256", "patient_id", "source_uri", "annotation_format")}
        rows.extend({"row_type": "box", **shared, **box} for box in boxes)
    rows.extend(
        {
            "row_type": "annotation",
            "rel_path": o.rel,
            "annotation_format": o.ann_format,
            "source_uri": staged.uri_of(o.path),
        }
        for o in inv.orphans
    )
    return rows, counts


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Fixed column order (reused and re-read rows look alike); ns stamps built as Int64 directly,
    because a detour through float64 (NaN on box rows) would round them and break reuse."""
    frame = pd.DataFrame(rows)
    for col in _INT_COLUMNS:
        if col in frame.columns:
            frame[col] = pd.array([r.get(col) for r in rows], dtype="Int64")
    ordered = [c for c in COLUMNS if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in ordered]]


def run(cfg: IngestConfig, source_uri: str | Path, out_dir: Path) -> pd.DataFrame:
    """Inventory the dataset at `source_uri` into `out_dir/manifest.parquet`; returns the manifest."""
    out_dir = Path(out_dir)
    staged = stage_source(source_uri, Path(cfg.cache_dir), cfg.zip)
    exts = {e.lower() for e in cfg.image_extensions}
    inv = discover(staged.root, exts, cfg.layout)
    if not inv.pairs:
        raise DataError(str(source_uri), f"no images with extensions {sorted(exts)} found")
    meta = _load_metadata(staged.root, cfg)
    prev = load_previous(out_dir / MANIFEST, out_dir / REPORT, cfg.rows_hash())
    rows, counts = _rows(inv, staged, prev, cfg, meta)
    manifest = _frame(rows)
    write_parquet(out_dir / MANIFEST, manifest)
    _report(out_dir, cfg, str(source_uri), staged, inv, manifest, counts, meta)
    return manifest


def _report(
    out_dir: Path,
    cfg: IngestConfig,
    source_uri: str,
    staged: StagedSource,
    inv: Inventory,
    manifest: pd.DataFrame,
    counts: dict[str, int],
    meta: dict[str, dict[str, str]],
) -> None:
    images = manifest[manifest.row_type == "image"]
    unknown = images.loc[images.patient_source == "unknown", "rel_path"].tolist()
    names = {p.image.name for p in inv.pairs} | {p.rel for p in inv.pairs}
    write_json(
        out_dir / REPORT,
        {
            "source": source_uri,
            "source_kind": staged.kind,
            "staging": staged.stats,
            "config_hash": cfg.rows_hash(),
            "decode": cfg.decode,
            **counts,
            "n_images": len(images),
            "n_boxes": int((manifest.row_type == "box").sum()),
            "n_orphan_annotations": len(inv.orphans),
            "n_patients": int(images.patient_id.nunique()),
            "by_annotation_format": images.annotation_format.fillna("none").value_counts().to_dict(),
            "unknown_patient_images": unknown,
            "ignored_json": inv.ignored_json,
            "metadata_rows_without_image": sorted(set(meta) - names),
        },
    )
    if unknown:
        print(f"warning: {len(unknown)} image(s) have no patient id; each is its own group: {unknown[:5]}")
    print(
        f"ingest_data: read {counts['images_read']} image(s) (decode: {cfg.decode}), "
        f"reused {counts['images_reused']} unchanged"
    )
