"""Per-image and per-box checks. Each finding has a stable code, a severity and a message.

Severities: `error` quarantines the image (never deletes it), `warning` keeps it and reports, and
`info` records an automatic, lossless fix (a normalised label, a 1-px clip). Every manifest column
is read with `.get`, so manifests from an older ingest (fewer columns) are still checked as far as
their columns allow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from components.common.task import TaskConfig
from components.validate_annotations.config import ValidateConfig

__all__ = ["ERROR", "INFO", "WARNING", "Finding", "ValidateConfig", "check_box", "check_duplicates",
           "check_image", "iou"]

ERROR, WARNING, INFO = "error", "warning", "info"
# What Pillow calls the format behind each extension (MPO: JPEGs with a second frame, from cameras).
_FORMATS = {".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".png": {"PNG"}, ".bmp": {"BMP", "DIB"},
            ".tif": {"TIFF"}, ".tiff": {"TIFF"}, ".dcm": {"DICOM", "DCM"}}
# labelImg writes depth 1 for grey images and 3 otherwise; other tools write 4 for RGBA/CMYK.
_DEPTHS = {"1": {1}, "L": {1}, "I": {1}, "I;16": {1}, "I;16B": {1}, "I;16L": {1}, "F": {1},
           "LA": {1, 2}, "P": {1, 3}, "RGBA": {3, 4}, "CMYK": {3, 4}}
# EXIF orientations whose display frame is the stored frame turned by 90° (width and height swap).
_QUARTER_TURNS = {5, 6, 7, 8}
_COORDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class Finding:
    """One problem. `input_file` is the input it is charged to (an image, or an annotation whose
    image is missing): an error there quarantines it; None means a dataset-wide finding."""

    code: str
    severity: str
    file: str
    message: str
    box_index: int | None = None
    input_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _image_error_code(img: dict[str, Any]) -> str:
    """The ingest's code; older manifests only have the message, so the bomb is told by its text."""
    if img.get("image_error_code"):
        return str(img["image_error_code"])
    return "IMAGE_TOO_LARGE" if "decompression bomb" in str(img["image_error"]).lower() else "IMAGE_CORRUPT"


def _annotation_error_code(img: dict[str, Any]) -> str:
    if img.get("annotation_error_code"):
        return str(img["annotation_error_code"])
    return "XML_UNSAFE" if str(img["annotation_error"]).startswith("unsafe XML") else "XML_MALFORMED"


def check_image(img: dict[str, Any], task: TaskConfig, cfg: ValidateConfig) -> list[Finding]:
    """File-level checks on one manifest image row."""
    f = img["rel_path"]
    ann = img.get("annotation_path")
    out: list[Finding] = []
    if img.get("image_error"):
        out.append(Finding(_image_error_code(img), ERROR, f, str(img["image_error"])))
    if task.sample == "patches" and cfg.require_annotation and not ann:
        out.append(Finding("ANNOTATION_MISSING", ERROR, f, "no annotation file with the same name"))
    if img.get("annotation_error"):
        out.append(Finding(_annotation_error_code(img), ERROR, ann or f, str(img["annotation_error"])))
    if not img.get("image_error"):
        out.extend(_format_checks(img))
        if ann and not img.get("annotation_error") and img.get("annotation_format") in (None, "voc"):
            out.extend(_size_checks(img, ann))
    out.extend(_image_label_checks(img, task))
    return out


def _format_checks(img: dict[str, Any]) -> list[Finding]:
    """Extension vs content, and EXIF rotation (which frame the boxes were drawn in)."""
    f, out = img["rel_path"], []
    expected = _FORMATS.get(PurePosixPath(f).suffix.lower())
    fmt = str(img.get("format") or "").upper()
    if expected and fmt and fmt not in expected and img.get("modality") != "dicom":
        out.append(Finding("EXTENSION_MISMATCH", WARNING, f,
                           f"the file is {fmt} but named {PurePosixPath(f).suffix}; decoded by content"))
    orientation = int(img.get("orientation") or 1)
    if orientation != 1:
        out.append(Finding("EXIF_ROTATED", WARNING, f,
                           f"EXIF orientation {orientation}: viewers show the photo rotated, but its boxes "
                           "are taken in the stored (unrotated) frame, as labelImg shows it, and are "
                           "cropped in that frame"))
    return out


def _size_checks(img: dict[str, Any], ann: str) -> list[Finding]:
    dw, dh = int(img.get("declared_width") or 0), int(img.get("declared_height") or 0)
    w, h = int(img["width"]), int(img["height"])
    out = _depth_check(img, ann)
    if dw == 0 or dh == 0:
        return [*out, Finding("SIZE_MISSING", WARNING, ann, f"<size> is {dw}x{dh}; the image is {w}x{h}")]
    if (dw, dh) != (w, h):
        how = "different"
        if (dh, dw) == (w, h):
            rotated = int(img.get("orientation") or 1) in _QUARTER_TURNS
            how = ("width/height swapped: the boxes were drawn on the EXIF-rotated view, not the "
                   "stored frame" if rotated else "width/height swapped")
        out.append(Finding("SIZE_MISMATCH", ERROR, ann, f"<size> says {dw}x{dh} but the image is {w}x{h} ({how})"))
    return out


def _depth_check(img: dict[str, Any], ann: str) -> list[Finding]:
    depth, mode = int(img.get("declared_depth") or 0), str(img.get("mode") or "")
    allowed = _DEPTHS.get(mode, {3})
    if depth == 0 or not mode or depth in allowed:
        return []
    return [Finding("DEPTH_MISMATCH", WARNING, ann,
                    f"<depth> is {depth} but the image is {mode} (expected {sorted(allowed)}); "
                    "every image is converted to 8-bit RGB anyway")]


def _image_label_checks(img: dict[str, Any], task: TaskConfig) -> list[Finding]:
    """Folder-per-class labels go through the same taxonomy as box labels."""
    raw = img.get("image_label")
    if not raw:
        return []
    label = task.normalize(str(raw))
    if label is None:
        return [Finding("LABEL_UNKNOWN", ERROR, img["rel_path"],
                        f"folder label {raw!r} is not one of {list(task.classes)}")]
    return [] if label == raw else [Finding("LABEL_NORMALIZED", INFO, img["rel_path"], f"{raw!r} → {label!r}")]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _geometry(coords: list[float], f: str, i: int) -> Finding | None:
    """Boxes that cannot be repaired: NaN/inf, inverted, zero area."""
    if not all(math.isfinite(c) for c in coords):
        return Finding("BOX_NOT_FINITE", ERROR, f, f"coordinates {coords}", i)
    x0, y0, x1, y1 = coords
    if x1 < x0 or y1 < y0:
        return Finding("BOX_INVERTED", ERROR, f, f"max < min in {coords}", i)
    if x1 == x0 or y1 == y0:
        return Finding("BOX_ZERO_AREA", ERROR, f, f"zero width or height in {coords}", i)
    return None


def _box_number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_box(box: dict[str, Any], img: dict[str, Any], task: TaskConfig,
              cfg: ValidateConfig) -> tuple[list[Finding], dict[str, Any] | None]:
    """Check one box; returns findings and the cleaned box (None when the box is unusable)."""
    f, i = img.get("annotation_path") or img["rel_path"], int(box["box_index"])
    coords = [_box_number(box.get(k)) for k in _COORDS]
    if (broken := _geometry(coords, f, i)) is not None:
        return [broken], None
    x0, y0, x1, y1 = coords
    out: list[Finding] = []
    label = task.normalize(str(box["label_raw"]))
    if label is None:
        return [Finding("LABEL_UNKNOWN", ERROR, f,
                        f"label {box['label_raw']!r} is not one of {list(task.classes)}", i)], None
    if label != box["label_raw"]:
        out.append(Finding("LABEL_NORMALIZED", INFO, f, f"{box['label_raw']!r} → {label!r}", i))
    w, h, tol = float(img["width"]), float(img["height"]), cfg.border_tolerance_px
    over = max(1.0 - x0, 1.0 - y0, x1 - w, y1 - h)
    if over > tol:
        return [*out, Finding("BOX_OUT_OF_BOUNDS", ERROR, f,
                              f"{coords} leaves the {int(w)}x{int(h)} image by {over:g} px "
                              f"(tolerance {tol:g} px)", i)], None
    if over > 0:
        x0, y0, x1, y1 = max(x0, 1.0), max(y0, 1.0), min(x1, w), min(y1, h)
        out.append(Finding("BOX_CLIPPED", INFO, f, f"clipped by {over:g} px to the image", i))
    if min(x1 - x0, y1 - y0) < cfg.min_box_side_px:
        out.append(Finding("BOX_TOO_SMALL", WARNING, f,
                           f"{x1 - x0:g}x{y1 - y0:g} px is below {cfg.min_box_side_px:g} px; not cropped", i))
        return out, None
    share = (x1 - x0) * (y1 - y0) / max(w * h, 1.0)
    if share > cfg.max_box_area_fraction:
        out.append(Finding("BOX_SIZE_OUTLIER", WARNING, f,
                           f"box covers {share:.0%} of the image (limit {cfg.max_box_area_fraction:.0%}); "
                           "a mis-drag around the whole photo?", i))
    return out, {**box, "label": label, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}


def check_duplicates(boxes: list[dict[str, Any]], file: str, cfg: ValidateConfig) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Exact/near duplicates (Ctrl+D then nudged) are dropped; same box, two labels is an error."""
    kept: list[dict[str, Any]] = []
    out: list[Finding] = []
    for box in boxes:
        c = tuple(box[k] for k in _COORDS)
        twin = next((k for k in kept if iou(c, tuple(k[x] for x in _COORDS)) >= cfg.near_duplicate_iou), None)
        if twin is None:
            kept.append(box)
            continue
        i, j = int(box["box_index"]), int(twin["box_index"])
        if twin["label"] != box["label"]:
            out.append(Finding("BOX_LABEL_CONFLICT", ERROR, file,
                               f"box {i} ({box['label']}) is box {j} ({twin['label']}) again under another "
                               "class: which one is right?", i))
        else:
            code = "BOX_DUPLICATE" if c == tuple(twin[x] for x in _COORDS) else "BOX_NEAR_DUPLICATE"
            overlap = "" if code == "BOX_DUPLICATE" else f" (IoU {iou(c, tuple(twin[x] for x in _COORDS)):.2f})"
            out.append(Finding(code, WARNING, file, f"box {i} repeats box {j}{overlap}; dropped", i))
    return out, kept
