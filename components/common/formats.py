"""Every annotation format a labelImg user can hand us, read into one shape: `AnnotationRead`.

labelImg saves Pascal VOC XML, YOLO txt (+ classes.txt) or CreateML JSON, and whole-image
datasets (chest X-ray) often just sort images into one folder per class. Downstream stages should
not care which: boxes always come out as `VocBox` in labelImg's pixel coordinates, and every
unreadable file raises `DataError` with a `code` validation can report as is.

YOLO and CreateML are read exactly as labelImg writes and reads them (libs/yolo_io.py,
libs/create_ml_io.py): its YOLO export is cx = (xmin+xmax)/2/W, w = (xmax-xmin)/W with no pixel
offset, and its CreateML export is the box centre and size in pixels, so a VOC box (10, 20, 30, 40)
comes back as (10, 20, 30, 40) from either twin. YOLO corners are rounded to whole pixels as
labelImg's boxes are (its 6-decimal export is exact to well under half a pixel); they are not
clamped to the image, so validation reports boxes that leave it instead of hiding them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.errors import DataError
from components.common.voc import VocBox, read_voc

XML_MALFORMED = "XML_MALFORMED"
ANNOTATION_MALFORMED = "ANNOTATION_MALFORMED"
CLASSES_FILE = "classes.txt"
SPLIT_NAMES = frozenset({"train", "val", "valid", "test"})


@dataclass(frozen=True)
class AnnotationRead:
    """What one annotation source says about one image, whatever its format."""

    format: str  # voc | yolo | createml | folder
    boxes: tuple[VocBox, ...] = ()
    declared_width: int | None = None
    declared_height: int | None = None
    declared_depth: int | None = None
    xml_filename: str | None = None
    xml_path: str | None = None
    classes: tuple[str, ...] | None = None
    classes_path: str | None = None
    image_label: str | None = None


def read_voc_file(path: Path) -> AnnotationRead:
    """labelImg XML; any DataError without a code is a structural XML problem (XML_MALFORMED)."""
    try:
        ann = read_voc(path)
    except DataError as exc:
        raise DataError(path, exc.problem, code=exc.code or XML_MALFORMED) from exc
    return AnnotationRead(
        "voc", ann.boxes, ann.width, ann.height, ann.depth, xml_filename=ann.filename, xml_path=ann.path
    )


def find_classes_file(txt: Path, stop: Path) -> Path | None:
    """labelImg writes classes.txt beside the labels; exporters often put it one or more levels up."""
    folder = txt.parent
    while True:
        candidate = folder / CLASSES_FILE
        if candidate.is_file():
            return candidate
        if folder == stop or folder == folder.parent or stop not in folder.parents:
            return None
        folder = folder.parent


def read_classes(path: Path) -> tuple[str, ...]:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read class list ({exc})", code=ANNOTATION_MALFORMED) from exc
    if not any(names):
        raise DataError(path, "class list is empty", code=ANNOTATION_MALFORMED)
    return tuple(names)


def _yolo_box(line: str, lineno: int, path: Path, classes: tuple[str, ...], size: tuple[int, int]) -> VocBox:
    parts = line.split()
    if len(parts) != 5:
        raise DataError(path, f"line {lineno}: expected 'class cx cy w h', found {line!r}", code=ANNOTATION_MALFORMED)
    try:
        cls = int(parts[0])
        cx, cy, w, h = (float(v) for v in parts[1:])
    except ValueError as exc:
        raise DataError(path, f"line {lineno}: not numbers: {line!r}", code=ANNOTATION_MALFORMED) from exc
    if not 0 <= cls < len(classes):
        raise DataError(
            path,
            f"line {lineno}: class index {cls} not in {len(classes)} classes of classes.txt",
            code=ANNOTATION_MALFORMED,
        )
    if not all(math.isfinite(v) for v in (cx, cy, w, h)):
        raise DataError(path, f"line {lineno}: non-finite coordinate in {line!r}", code=ANNOTATION_MALFORMED)
    width, height = size
    xmin, xmax = round((cx - w / 2) * width), round((cx + w / 2) * width)
    ymin, ymax = round((cy - h / 2) * height), round((cy + h / 2) * height)
    return VocBox(classes[cls], float(xmin), float(ymin), float(xmax), float(ymax))


def read_yolo_file(path: Path, size: tuple[int, int] | None, stop: Path) -> AnnotationRead:
    """YOLO `cls cx cy w h` (normalised) → pixel boxes; needs the real image size.

    Out-of-range values are converted, not refused: validation reports them as
    BOX_OUT_OF_BOUNDS with the same rules as VOC. Without a decodable image (size None) the file
    is still parsed for syntax but yields no boxes: the image itself is already an error.
    """
    classes_path = find_classes_file(path, stop)
    if classes_path is None:
        raise DataError(
            path, f"no {CLASSES_FILE} in its folder or any parent up to the dataset root", code=ANNOTATION_MALFORMED
        )
    classes = read_classes(classes_path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read YOLO labels ({exc})", code=ANNOTATION_MALFORMED) from exc
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    boxes = tuple(_yolo_box(ln, i, path, classes, size or (1, 1)) for i, ln in lines)
    return AnnotationRead("yolo", boxes if size else (), classes=classes, classes_path=str(classes_path))


def load_createml(path: Path) -> dict[str, Any] | None:
    """Index a CreateML file by image name; None when the JSON is not CreateML at all.

    CreateML is one JSON array of {image, annotations}; other JSON files (exports, configs) are
    not ours to judge, so they are skipped rather than reported.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, list) or not doc or not all(isinstance(e, dict) and "image" in e for e in doc):
        return None
    return {str(entry["image"]): entry for entry in doc}


def _createml_box(item: Any, i: int, path: Path, image: str) -> VocBox:
    try:
        coords = item["coordinates"]
        x, y, w, h = (float(coords[k]) for k in ("x", "y", "width", "height"))
        label = str(item["label"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            path,
            f"{image}: annotation {i} needs label and coordinates x/y/width/height ({exc!r})",
            code=ANNOTATION_MALFORMED,
        ) from exc
    return VocBox(label, x - w / 2, y - h / 2, x + w / 2, y + h / 2)


def read_createml_entry(path: Path, entry: dict[str, Any]) -> AnnotationRead:
    """One image's entry: x, y are the box centre in pixels, width/height in pixels."""
    image = str(entry.get("image"))
    items = entry.get("annotations")
    if not isinstance(items, list):
        raise DataError(
            path, f"{image}: 'annotations' should be a list, found {type(items).__name__}", code=ANNOTATION_MALFORMED
        )
    return AnnotationRead("createml", tuple(_createml_box(it, i, path, image) for i, it in enumerate(items)))


def read_folder_label(rel_path: str) -> AnnotationRead:
    """Folder-per-class: the image's parent folder is its label (split folders are not labels)."""
    parts = rel_path.split("/")
    if len(parts) < 2 or parts[-2].lower() in SPLIT_NAMES:
        raise DataError(
            rel_path, "layout folder_per_class: image is not inside a class folder", code=ANNOTATION_MALFORMED
        )
    return AnnotationRead("folder", image_label=parts[-2])
