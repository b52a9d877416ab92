"""Turn a folder of images + labelImg XML + metadata.csv into one manifest table.

One row per image (`row_type == "image"`) and one per box (`row_type == "box"`), each carrying the
file's sha256, so every later artefact can be traced back to exact bytes. Nothing is judged here:
unreadable images and XML are recorded with their error and judged by `validate_annotations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import track

from components.common.errors import DataError
from components.common.hashing import sha256_file
from components.common.images import probe
from components.common.io import write_json, write_parquet
from components.common.voc import read_voc

MANIFEST = "manifest.parquet"
REPORT = "ingest_report.json"


@dataclass(frozen=True)
class IngestConfig:
    """The `ingest_data` section of params.yaml."""

    metadata_file: str = "metadata.csv"
    image_extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
    # Used when metadata.csv has no row for an image: a regex whose group `patient` is the id.
    patient_pattern: str | None = None


def _load_metadata(source: Path, cfg: IngestConfig) -> pd.DataFrame:
    path = source / cfg.metadata_file
    if not path.is_file():
        return pd.DataFrame(columns=["filename", "patient_id", "body_site", "label_source"])
    meta = pd.read_csv(path, dtype=str).fillna("")
    missing = {"filename", "patient_id"} - set(meta.columns)
    if missing:
        raise DataError(path, f"missing column(s) {sorted(missing)}; found {list(meta.columns)}")
    dupes = meta["filename"][meta["filename"].duplicated()].tolist()
    if dupes:
        raise DataError(path, f"filename listed more than once: {dupes[:5]}")
    return meta


def _patient(name: str, meta: dict[str, dict[str, str]], pattern: re.Pattern[str] | None) -> str:
    row = meta.get(name)
    if row and row.get("patient_id"):
        return row["patient_id"]
    if pattern and (m := pattern.search(name)):
        return m.group("patient")
    return ""


def _image_rows(path: Path, source: Path, patient: str, extra: dict[str, str]) -> list[dict[str, Any]]:
    """The image row and its box rows for one image file."""
    rel = path.relative_to(source).as_posix()
    row: dict[str, Any] = {
        "row_type": "image", "rel_path": rel, "source_uri": path.resolve().as_uri(),
        "sha256": sha256_file(path), "patient_id": patient,
        "body_site": extra.get("body_site", ""), "label_source": extra.get("label_source", ""),
    }
    try:
        info = probe(path)
        row.update(width=info.width, height=info.height, mode=info.mode,
                   format=info.format, orientation=info.orientation, image_error=None)
    except DataError as exc:
        row.update(width=0, height=0, mode="", format="", orientation=1, image_error=exc.problem)
    xml = path.with_suffix(".xml")
    row["annotation_path"] = xml.relative_to(source).as_posix() if xml.is_file() else None
    row["annotation_error"] = None
    boxes: list[dict[str, Any]] = []
    if xml.is_file():
        try:
            ann = read_voc(xml)
        except DataError as exc:
            row["annotation_error"] = exc.problem
        else:
            row.update(xml_filename=ann.filename, declared_width=ann.width,
                       declared_height=ann.height, declared_depth=ann.depth)
            for i, box in enumerate(ann.boxes):
                boxes.append({
                    **{k: row[k] for k in ("rel_path", "sha256", "patient_id", "source_uri")},
                    "row_type": "box", "box_index": i, "label_raw": box.name,
                    "xmin": box.xmin, "ymin": box.ymin, "xmax": box.xmax, "ymax": box.ymax,
                    "difficult": box.difficult, "truncated": box.truncated,
                })
    return [row, *boxes]


def run(cfg: IngestConfig, source: Path, out_dir: Path) -> pd.DataFrame:
    """Inventory `source` into `out_dir/manifest.parquet`; returns the manifest."""
    if not source.is_dir():
        raise DataError(source, "source folder does not exist")
    exts = {e.lower() for e in cfg.image_extensions}
    images = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    if not images:
        raise DataError(source, f"no images with extensions {sorted(exts)} found")
    meta_df = _load_metadata(source, cfg)
    meta = {r["filename"]: r for r in meta_df.to_dict("records")}
    pattern = re.compile(cfg.patient_pattern) if cfg.patient_pattern else None
    rows: list[dict[str, Any]] = []
    unknown: list[str] = []
    for path in track(images, description="ingest_data"):
        patient = _patient(path.name, meta, pattern)
        if not patient:
            unknown.append(path.name)
            patient = f"unknown:{path.stem}"  # its own group, so it can never leak across splits
        rows.extend(_image_rows(path, source, patient, meta.get(path.name, {})))
    manifest = pd.DataFrame(rows)
    write_parquet(out_dir / MANIFEST, manifest)
    is_img = manifest["row_type"] == "image"
    write_json(out_dir / REPORT, {
        "source": str(source.resolve()), "n_images": int(is_img.sum()),
        "n_boxes": int((~is_img).sum()), "n_patients": int(manifest.loc[is_img, "patient_id"].nunique()),
        "unknown_patient_images": unknown,
        "metadata_rows_without_image": sorted(set(meta) - {p.name for p in images}),
    })
    if unknown:
        print(f"warning: {len(unknown)} image(s) have no patient id; each is its own group: {unknown[:5]}")
    return manifest
