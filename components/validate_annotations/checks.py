"""Per-image and per-box checks. Each finding has a stable code, a severity and a message.

Severities: `error` on the image (no box index) quarantines the image (never deletes it); `error` on
one box drops that box only, so one zero-area box among fifteen good ones costs one box, not the
photo (the image is then marked unusable for detector training, whose missing box would teach
"background"). `warning` keeps and reports; `info` records an automatic, lossless fix (a normalised
label, a 1-px clip) or an oddity that is explained and harmless. Every manifest column is read with
`.get`, so manifests from an older ingest (fewer columns) are still checked as far as their columns
allow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from components.common.images import SINGLE_CHANNEL as _SINGLE_CHANNEL
from components.common.task import TaskConfig
from components.validate_annotations.config import ValidateConfig

__all__ = ["ERROR", "INFO", "WARNING", "Finding", "check_box", "check_duplicates", "check_image", "iou"]

ERROR, WARNING, INFO = "error", "warning", "info"
# What Pillow calls the format behind each extension (MPO: JPEGs with a second frame, from cameras).
_FORMATS = {
    ".jpg": {"JPEG", "MPO"},
    ".jpeg": {"JPEG", "MPO"},
    ".png": {"PNG"},
    ".bmp": {"BMP", "DIB"},
    ".tif": {"TIFF"},
    ".tiff": {"TIFF"},
    ".dcm": {"DICOM", "DCM"},
}
# labelImg writes depth 1 for grey images and 3 otherwise; other tools write 4 for RGBA/CMYK.
_DEPTHS = {
    "1": {1},
    "L": {1},
    "I": {1},
    "I;16": {1},
    "I;16B": {1},
    "I;16L": {1},
    "F": {1},
    "LA": {1, 2},
    "P": {1, 3},
    "RGBA": {3, 4},
    "CMYK": {3, 4},
}
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

    @property
    def quarantines(self) -> bool:
        """An image-level error: its input file is quarantined."""
        return self.severity == ERROR and self.box_index is None and self.input_file is not None

    @property
    def drops_box(self) -> bool:
        """A box-level error: only box `box_index` of `input_file` is left out."""
        return self.severity == ERROR and self.box_index is not None

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
        out.append(
            Finding(
                "EXTENSION_MISMATCH",
                WARNING,
                f,
                f"the file is {fmt} but named {PurePosixPath(f).suffix}; decoded by content",
            )
        )
    orientation = int(img.get("orientation") or 1)
    if orientation != 1:
        out.append(
            Finding(
                "EXIF_ROTATED",
                WARNING,
                f,
                f"EXIF orientation {orientation}: viewers show the photo rotated, but its boxes "
                "are taken in the stored (unrotated) frame, as labelImg shows it, and are "
                "cropped in that frame",
            )
        )
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
            how = (
                "width/height swapped: the boxes were drawn on the EXIF-rotated view, not the stored frame"
                if rotated
                else "width/height swapped"
            )
        out.append(Finding("SIZE_MISMATCH", ERROR, ann, f"<size> says {dw}x{dh} but the image is {w}x{h} ({how})"))
    return out


def _depth_check(img: dict[str, Any], ann: str) -> list[Finding]:
    """`<depth>` against the pixels. labelImg writes 1 when Qt calls the image grey (a grey-only RGB
    image counts; a palette only when it is the identity grey ramp) and 3 otherwise, so a depth that
    differs from the storage mode but matches that rule is info; one the pixels contradict (1 on a
    colour image, 3 on a one-channel file) is a warning. Without `grey_pixels` (older manifests,
    header-only decode) the storage mode alone decides, as before."""
    depth, mode = int(img.get("declared_depth") or 0), str(img.get("mode") or "")
    if depth == 0 or not mode:
        return []
    grey = img.get("grey_pixels")
    grey = None if grey is None or grey != grey else bool(grey)  # NaN from parquet: unknown
    allowed = _DEPTHS.get(mode, {3})
    if grey is False and depth == 1 and mode not in _SINGLE_CHANNEL:
        return [
            Finding(
                "DEPTH_MISMATCH",
                WARNING,
                ann,
                f"<depth> is 1 (grey) but the {mode} image has colour "
                "pixels: was the photo replaced after it was annotated?",
            )
        ]
    if (
        grey is True
        and mode not in _SINGLE_CHANNEL
        and ((depth == 1 and 1 not in allowed) or (mode == "P" and depth >= 3))
    ):
        return [Finding("DEPTH_MISMATCH", INFO, ann, _explained_depth(depth, mode))]
    if depth in allowed:
        return []
    return [
        Finding(
            "DEPTH_MISMATCH",
            WARNING,
            ann,
            f"<depth> is {depth} but the image is {mode} (expected {sorted(allowed)}); "
            "every image is converted to 8-bit RGB anyway",
        )
    ]


def _explained_depth(depth: int, mode: str) -> str:
    if depth == 1:
        return (
            f"<depth> is 1 and the file is stored {mode}, but every pixel is grey: labelImg writes 1 "
            "for such images; consistent"
        )
    return (
        f"<depth> is {depth} for a {mode} image whose pixels are all grey: labelImg writes 3 for a "
        "palette that is not the identity grey ramp; harmless"
    )


def _image_label_checks(img: dict[str, Any], task: TaskConfig) -> list[Finding]:
    """Folder-per-class labels go through the same taxonomy as box labels."""
    raw = img.get("image_label")
    if not raw:
        return []
    label = task.normalize(str(raw))
    if label is None:
        return [
            Finding("LABEL_UNKNOWN", ERROR, img["rel_path"], f"folder label {raw!r} is not one of {list(task.classes)}")
        ]
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


def box_number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_box(
    box: dict[str, Any], img: dict[str, Any], task: TaskConfig, cfg: ValidateConfig
) -> tuple[list[Finding], dict[str, Any] | None]:
    """Check one box; returns findings and the cleaned box (None when the box is dropped). A box too
    small to crop stays, with `for_patches` False: crop_patches skips it, the detector still learns it."""
    f, i = img.get("annotation_path") or img["rel_path"], int(box["box_index"])
    coords = [box_number(box.get(k)) for k in _COORDS]
    if (broken := _geometry(coords, f, i)) is not None:
        return [broken], None
    x0, y0, x1, y1 = coords
    out: list[Finding] = []
    label = task.normalize(str(box["label_raw"]))
    if label is None:
        return [
            Finding(
                "LABEL_UNKNOWN",
                ERROR,
                f,
                f"label {box['label_raw']!r} is not one of {list(task.classes)}; box dropped (add it to "
                "task.classes or task.aliases if it is one of them)",
                i,
            )
        ], None
    if label != box["label_raw"]:
        out.append(Finding("LABEL_NORMALIZED", INFO, f, f"{box['label_raw']!r} → {label!r}", i))
    w, h, tol = float(img["width"]), float(img["height"]), cfg.border_tolerance_px
    over = max(1.0 - x0, 1.0 - y0, x1 - w, y1 - h)
    if over > tol:
        return [
            *out,
            Finding(
                "BOX_OUT_OF_BOUNDS",
                ERROR,
                f,
                f"{coords} leaves the {int(w)}x{int(h)} image by {over:g} px (tolerance {tol:g} px)",
                i,
            ),
        ], None
    if over > 0:
        x0, y0, x1, y1 = max(x0, 1.0), max(y0, 1.0), min(x1, w), min(y1, h)
        out.append(Finding("BOX_CLIPPED", INFO, f, f"clipped by {over:g} px to the image", i))
    clean = {**box, "label": label, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1, "for_patches": True}
    if min(x1 - x0, y1 - y0) < cfg.min_box_side_px:
        out.append(
            Finding(
                "BOX_TOO_SMALL",
                WARNING,
                f,
                f"{x1 - x0:g}x{y1 - y0:g} px is below {cfg.min_box_side_px:g} px; not cropped into "
                "a patch, kept for the detector (it is still an object)",
                i,
            )
        )
        return out, {**clean, "for_patches": False}
    share = (x1 - x0) * (y1 - y0) / max(w * h, 1.0)
    if share > cfg.max_box_area_fraction:
        out.append(
            Finding(
                "BOX_SIZE_OUTLIER",
                WARNING,
                f,
                f"box covers {share:.0%} of the image (limit {cfg.max_box_area_fraction:.0%}); "
                "a mis-drag around the whole photo?",
                i,
            )
        )
    return out, clean


def _coords(box: dict[str, Any]) -> tuple[float, ...]:
    return tuple(box[k] for k in _COORDS)


def check_duplicates(
    boxes: list[dict[str, Any]], file: str, cfg: ValidateConfig
) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Exact/near duplicates (Ctrl+D then nudged) are the same object: the repeat is dropped (warning).
    The same box under two classes drops every copy (error): nobody knows which label is right,
    and keeping either would train on a coin toss."""
    kept: list[dict[str, Any]] = []
    conflicted: list[dict[str, Any]] = []
    out: list[Finding] = []
    for box in boxes:
        c = _coords(box)
        twin = next((k for k in kept + conflicted if iou(c, _coords(k)) >= cfg.near_duplicate_iou), None)
        if twin is None:
            kept.append(box)
            continue
        i, j = int(box["box_index"]), int(twin["box_index"])
        if twin["label"] != box["label"] or any(t is twin for t in conflicted):
            if all(t is not twin for t in conflicted):
                kept.remove(twin)
                conflicted.append(twin)
                out.append(_conflict(twin, box, file))
            conflicted.append(box)
            out.append(_conflict(box, twin, file))
        else:
            code = "BOX_DUPLICATE" if c == _coords(twin) else "BOX_NEAR_DUPLICATE"
            overlap = "" if code == "BOX_DUPLICATE" else f" (IoU {iou(c, _coords(twin)):.2f})"
            out.append(Finding(code, WARNING, file, f"box {i} repeats box {j}{overlap}; dropped", i))
    return out, kept


def _conflict(box: dict[str, Any], other: dict[str, Any], file: str) -> Finding:
    i, j = int(box["box_index"]), int(other["box_index"])
    if box["label"] == other["label"]:
        what = f"box {i} ({box['label']}) repeats box {j}, whose object is also labelled another class"
    else:
        what = f"box {i} ({box['label']}) is box {j} ({other['label']}) again under another class"
    return Finding("BOX_LABEL_CONFLICT", ERROR, file, f"{what}: which one is right? Dropped", i)
