"""Per-image and per-box checks. Each finding has a stable code, a severity and a message.

Severities: `error` quarantines the image (never deletes it), `warning` keeps it and reports, and
`info` records an automatic, lossless fix (a normalised label, a 1-px clip).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from components.common.task import TaskConfig

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    file: str
    message: str
    box_index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValidateConfig:
    """The `validate_annotations` section of params.yaml."""

    border_tolerance_px: float = 1.0
    min_box_side_px: float = 4.0
    near_duplicate_iou: float = 0.9
    # The stage fails (rather than train on scraps) if more than this share of images is quarantined.
    max_quarantine_fraction: float = 0.2
    require_annotation: bool = True


def check_image(img: dict[str, Any], task: TaskConfig, cfg: ValidateConfig) -> list[Finding]:
    """File-level checks on one manifest image row."""
    f = img["rel_path"]
    out: list[Finding] = []
    if img.get("image_error"):
        out.append(Finding("IMAGE_CORRUPT", ERROR, f, str(img["image_error"])))
    ann = img.get("annotation_path")
    if task.sample == "patches" and cfg.require_annotation and not ann:
        out.append(Finding("ANNOTATION_MISSING", ERROR, f, "no labelImg XML with the same name"))
    if img.get("annotation_error"):
        out.append(Finding("XML_MALFORMED", ERROR, ann or f, str(img["annotation_error"])))
    if ann and not img.get("annotation_error") and not img.get("image_error"):
        out.extend(_size_checks(img, ann))
    return out


def _size_checks(img: dict[str, Any], ann: str) -> list[Finding]:
    dw, dh = int(img.get("declared_width") or 0), int(img.get("declared_height") or 0)
    w, h = int(img["width"]), int(img["height"])
    if dw == 0 or dh == 0:
        return [Finding("SIZE_MISSING", WARNING, ann, f"<size> is {dw}x{dh}; the image is {w}x{h}")]
    if (dw, dh) != (w, h):
        how = "width/height swapped" if (dh, dw) == (w, h) else "different"
        return [Finding("SIZE_MISMATCH", ERROR, ann, f"<size> says {dw}x{dh} but the image is {w}x{h} ({how})")]
    return []


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def check_box(box: dict[str, Any], img: dict[str, Any], task: TaskConfig,
              cfg: ValidateConfig) -> tuple[list[Finding], dict[str, Any] | None]:
    """Check one box; returns findings and the cleaned box (None when the box is unusable)."""
    f, i = img.get("annotation_path") or img["rel_path"], int(box["box_index"])
    coords = [float(box[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
    if not all(math.isfinite(c) for c in coords):
        return [Finding("BOX_NOT_FINITE", ERROR, f, f"coordinates {coords}", i)], None
    x0, y0, x1, y1 = coords
    if x1 < x0 or y1 < y0:
        return [Finding("BOX_INVERTED", ERROR, f, f"max < min in {coords}", i)], None
    if x1 == x0 or y1 == y0:
        return [Finding("BOX_ZERO_AREA", ERROR, f, f"zero width or height in {coords}", i)], None
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
                              f"{coords} leaves the {int(w)}x{int(h)} image by {over:g} px", i)], None
    if over > 0:
        x0, y0, x1, y1 = max(x0, 1.0), max(y0, 1.0), min(x1, w), min(y1, h)
        out.append(Finding("BOX_CLIPPED", INFO, f, f"clipped by {over:g} px to the image", i))
    if min(x1 - x0, y1 - y0) < cfg.min_box_side_px:
        out.append(Finding("BOX_TOO_SMALL", WARNING, f,
                           f"{x1 - x0:g}x{y1 - y0:g} px is below {cfg.min_box_side_px:g} px; not cropped", i))
        return out, None
    return out, {**box, "label": label, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}


def check_duplicates(boxes: list[dict[str, Any]], file: str, cfg: ValidateConfig) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Exact/near duplicates (Ctrl+D then nudged) are dropped; same box, two labels is an error."""
    kept: list[dict[str, Any]] = []
    out: list[Finding] = []
    for box in boxes:
        c = tuple(box[k] for k in ("xmin", "ymin", "xmax", "ymax"))
        twin = next((k for k in kept if iou(c, tuple(k[x] for x in ("xmin", "ymin", "xmax", "ymax")))
                     >= cfg.near_duplicate_iou), None)
        if twin is None:
            kept.append(box)
            continue
        i = int(box["box_index"])
        if twin["label"] != box["label"]:
            out.append(Finding("BOX_LABEL_CONFLICT", ERROR, file,
                               f"box {i} ({box['label']}) overlaps box {twin['box_index']} ({twin['label']})", i))
        else:
            code = "BOX_DUPLICATE" if c == tuple(twin[x] for x in ("xmin", "ymin", "xmax", "ymax")) else "BOX_NEAR_DUPLICATE"
            out.append(Finding(code, WARNING, file, f"box {i} repeats box {twin['box_index']}; dropped", i))
    return out, kept
