"""Read one image and one annotation into manifest fields (the expensive part of ingestion).

Split in two halves, image and annotation, because they change independently: an expert fixing a
box touches only the XML, so an incremental re-run re-reads the XML and keeps the image's hash.
`READS` counts real reads so tests (and the report) can prove unchanged files were not re-read.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import IO, Any

from components.common.dicom import read_dicom
from components.common.errors import DataError
from components.common.formats import (
    AnnotationRead,
    find_classes_file,
    read_createml_entry,
    read_folder_label,
    read_voc_file,
    read_yolo_file,
)
from components.common.hashing import sha256_file
from components.common.images import IMAGE_CORRUPT, camera_name, is_grey, phash, probe
from components.ingest_data.discover import Pairing

READS: Counter[str] = Counter()  # "image" / "annotation": files actually opened since import

IMAGE_FIELDS = (
    "sha256",
    "file_size",
    "mtime_ns",
    "width",
    "height",
    "mode",
    "format",
    "bit_depth",
    "orientation",
    "modality",
    "image_error",
    "image_error_code",
    "phash",
    "decode",
    "grey_pixels",
    "exif_camera",
)
ANNOTATION_FIELDS = (
    "annotation_path",
    "annotation_format",
    "annotation_error",
    "annotation_error_code",
    "xml_filename",
    "xml_path",
    "declared_width",
    "declared_height",
    "declared_depth",
    "classes_txt",
    "classes_txt_path",
    "image_label",
    "annotation_mtime_ns",
)
BOX_FIELDS = ("box_index", "label_raw", "xmin", "ymin", "xmax", "ymax", "difficult", "truncated")


def _dicom_fields(path: Path) -> dict[str, Any]:
    """DICOM is always read in full (the 8-bit conversion needs the pixels), whatever the mode."""
    dcm = read_dicom(path)
    bits = int(dcm.tags.get("BitsStored", 8))
    return {
        "width": dcm.image.width,
        "height": dcm.image.height,
        "mode": str(dcm.tags.get("PhotometricInterpretation", "")),
        "format": "DICOM",
        "bit_depth": 8 if bits <= 8 else 16,
        "orientation": 1,
        "modality": "dicom",
        "phash": phash(dcm.image),
        "decode": "full",
        "grey_pixels": is_grey(dcm.image),
        "exif_camera": camera_name(dcm.tags.get("Manufacturer"), dcm.tags.get("ManufacturerModelName")),
    }


def _photo_fields(fh: IO[bytes], max_pixels: int, decode: str) -> dict[str, Any]:
    info = probe(fh, max_pixels=max_pixels, with_phash=True, decode=decode)
    return {
        "width": info.width,
        "height": info.height,
        "mode": info.mode,
        "format": info.format,
        "bit_depth": info.bit_depth,
        "orientation": info.orientation,
        "modality": "photo",
        "phash": info.phash,
        "decode": decode,
        "grey_pixels": info.grey,
        "exif_camera": info.camera,
    }


def read_image(path: Path, max_pixels: int, decode: str = "draft") -> dict[str, Any]:
    """Hash, size and (unless `header`) decode check of one image file; errors are recorded, never raised.

    A photo is opened once: hashed through the open handle, rewound, then probed, because on a
    header-only run the open/read syscalls are a visible share of the per-image cost. The `decode`
    field records what was really done to the row (DICOM is always `full`) so validation can say
    which images were never pixel-checked.
    """
    READS["image"] += 1
    stat = path.stat()
    out: dict[str, Any] = {
        "file_size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "image_error": None,
        "image_error_code": None,
    }
    dicom = path.suffix.lower() == ".dcm"
    try:
        if dicom:
            out["sha256"] = sha256_file(path)
            out.update(_dicom_fields(path))
        else:
            with path.open("rb") as fh:
                out["sha256"] = hashlib.file_digest(fh, "sha256").hexdigest()
                fh.seek(0)
                out.update(_photo_fields(fh, max_pixels, decode))
    except DataError as exc:
        out.update(
            width=0,
            height=0,
            mode="",
            format="",
            bit_depth=0,
            orientation=1,
            phash=None,
            grey_pixels=None,
            exif_camera="",
            modality="dicom" if dicom else "photo",
            decode="full" if dicom else decode,
            image_error=exc.problem,
            image_error_code=exc.code or IMAGE_CORRUPT,
        )
    return out


def annotation_mtime(pair: Pairing, root: Path) -> int | None:
    """Newest mtime of the files the annotation depends on (YOLO also depends on classes.txt)."""
    if pair.ann_path is None:
        return None
    stamps = [pair.ann_path.stat().st_mtime_ns]
    if pair.ann_format == "yolo" and (classes := find_classes_file(pair.ann_path, root)):
        stamps.append(classes.stat().st_mtime_ns)
    return max(stamps)


def _parse(pair: Pairing, root: Path, size: tuple[int, int] | None) -> AnnotationRead:
    assert pair.ann_format is not None
    if pair.ann_format == "folder":
        return read_folder_label(pair.rel)
    assert pair.ann_path is not None
    READS["annotation"] += 1
    if pair.ann_format == "voc":
        return read_voc_file(pair.ann_path)
    if pair.ann_format == "yolo":
        return read_yolo_file(pair.ann_path, size, root)
    return read_createml_entry(pair.ann_path, pair.createml_entry or {})


def _rel(path: str | Path | None, root: Path) -> str | None:
    if path is None:
        return None
    p = Path(path)
    if p.is_relative_to(root):  # discovered under root: no filesystem round-trip needed
        return p.relative_to(root).as_posix()
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def read_annotation(pair: Pairing, root: Path, image: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Annotation fields and box fields of one image; a bad file is recorded with its code."""
    out: dict[str, Any] = dict.fromkeys(ANNOTATION_FIELDS)
    out.update(
        annotation_path=_rel(pair.ann_path, root),
        annotation_format=pair.ann_format,
        annotation_mtime_ns=annotation_mtime(pair, root),
    )
    if pair.ann_format is None:
        return out, []
    size = (int(image["width"]), int(image["height"])) if not image.get("image_error") else None
    try:
        ann = _parse(pair, root, size)
    except DataError as exc:
        out.update(annotation_error=exc.problem, annotation_error_code=exc.code or "ANNOTATION_MALFORMED")
        return out, []
    out.update(
        xml_filename=ann.xml_filename,
        xml_path=ann.xml_path,
        declared_width=ann.declared_width,
        declared_height=ann.declared_height,
        declared_depth=ann.declared_depth,
        classes_txt=",".join(ann.classes) if ann.classes is not None else None,
        classes_txt_path=_rel(ann.classes_path, root),
        image_label=ann.image_label,
    )
    boxes = [
        {
            "box_index": i,
            "label_raw": b.name,
            "xmin": b.xmin,
            "ymin": b.ymin,
            "xmax": b.xmax,
            "ymax": b.ymax,
            "difficult": b.difficult,
            "truncated": b.truncated,
        }
        for i, b in enumerate(ann.boxes)
    ]
    return out, boxes
