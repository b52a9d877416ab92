"""Pascal VOC XML exactly as labelImg reads and writes it.

labelImg (libs/pascal_voc_io.py) writes tab-indented XML without a declaration, 1-based integer
corners, `truncated=1` when a box touches the image border, and `depth=1` for grey images. We write
the same bytes so that files we produce (synthetic data, expert-reviewed feedback) can be opened
and edited in labelImg, and we parse with defusedxml because annotation files come from outside.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from components.common.errors import DataError


@dataclass(frozen=True)
class VocBox:
    """One labelImg rectangle, in labelImg's 1-based inclusive pixel coordinates."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False
    truncated: bool = False

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


@dataclass(frozen=True)
class VocAnnotation:
    """The content of one labelImg XML file."""

    folder: str
    filename: str
    path: str | None
    width: int
    height: int
    depth: int
    boxes: tuple[VocBox, ...] = field(default_factory=tuple)
    database: str = "Unknown"
    verified: bool = False


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    node = ET.SubElement(parent, tag)
    node.text = text
    return node


def _touches_border(box: VocBox, width: int, height: int) -> bool:
    # Same rule as labelImg's appendObjects: a box on the first row/column or on the far edge.
    return int(box.ymax) == height or int(box.ymin) == 1 or int(box.xmax) == width or int(box.xmin) == 1


def to_xml(ann: VocAnnotation) -> str:
    """Serialise as labelImg does (tab indent, no XML declaration, trailing newline)."""
    top = ET.Element("annotation")
    if ann.verified:
        top.set("verified", "yes")
    _sub(top, "folder", ann.folder)
    _sub(top, "filename", ann.filename)
    if ann.path is not None:
        _sub(top, "path", ann.path)
    source = ET.SubElement(top, "source")
    _sub(source, "database", ann.database)
    size = ET.SubElement(top, "size")
    _sub(size, "width", str(ann.width))
    _sub(size, "height", str(ann.height))
    _sub(size, "depth", str(ann.depth))
    _sub(top, "segmented", "0")
    for box in ann.boxes:
        obj = ET.SubElement(top, "object")
        _sub(obj, "name", box.name)
        _sub(obj, "pose", "Unspecified")
        _sub(obj, "truncated", "1" if _touches_border(box, ann.width, ann.height) else "0")
        _sub(obj, "difficult", "1" if box.difficult else "0")
        bnd = ET.SubElement(obj, "bndbox")
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            _sub(bnd, tag, str(int(getattr(box, tag))))
    ET.indent(top, space="\t")
    return ET.tostring(top, encoding="unicode") + "\n"


def write_voc(path: Path, ann: VocAnnotation) -> None:
    """Write one annotation file next to its image, as labelImg's default save does."""
    path.write_text(to_xml(ann), encoding="utf-8")


def _text(node: ET.Element, tag: str, path: Path, *, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise DataError(path, f"<{tag}> is missing or empty")
        return None
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: Path) -> float:
    raw = _text(node, tag, path)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except ValueError as exc:
        raise DataError(path, f"<{tag}> should be a number, found {raw!r}") from exc
    return value


def _int_or_zero(node: ET.Element | None, tag: str) -> int:
    """Size fields: a missing or unparsable value reads as 0 so validation can report it."""
    if node is None:
        return 0
    child = node.find(tag)
    try:
        return int(float(child.text)) if child is not None and child.text else 0
    except ValueError:
        return 0


def _parse_box(obj: ET.Element, path: Path) -> VocBox:
    bnd = obj.find("bndbox")
    if bnd is None:
        raise DataError(path, "an <object> has no <bndbox>")
    coords = {tag: _number(bnd, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax")}
    difficult = _text(obj, "difficult", path, required=False) or "0"
    truncated = _text(obj, "truncated", path, required=False) or "0"
    return VocBox(
        name=_text(obj, "name", path) or "",
        difficult=difficult in ("1", "true", "True"),
        truncated=truncated in ("1", "true", "True"),
        **coords,
    )


def _database(root: ET.Element, path: Path) -> str:
    source = root.find("source")
    if source is None:
        return "Unknown"
    return _text(source, "database", path, required=False) or "Unknown"


def read_voc(path: Path) -> VocAnnotation:
    """Parse a labelImg XML file; raises DataError naming the file for anything unreadable.

    Coordinates are kept as floats (other tools write `12.5`); NaN/inf survive parsing so that
    validation can report them with a precise code instead of failing here.
    """
    try:
        root = SafeET.parse(path, forbid_dtd=True).getroot()  # labelImg never writes a DTD
    except DefusedXmlException as exc:
        raise DataError(path, f"unsafe XML refused ({type(exc).__name__})", code="XML_UNSAFE") from exc
    except ET.ParseError as exc:
        raise DataError(path, f"malformed XML: {exc}", code="XML_MALFORMED") from exc
    if root.tag != "annotation":
        raise DataError(path, f"root element is <{root.tag}>, expected <annotation>", code="XML_MALFORMED")
    size = root.find("size")
    boxes = tuple(_parse_box(obj, path) for obj in root.findall("object"))
    return VocAnnotation(
        folder=_text(root, "folder", path, required=False) or "",
        filename=_text(root, "filename", path) or "",
        path=_text(root, "path", path, required=False),
        width=_int_or_zero(size, "width"),
        height=_int_or_zero(size, "height"),
        depth=_int_or_zero(size, "depth"),
        boxes=boxes,
        database=_database(root, path),
        verified=root.get("verified") == "yes",
    )


def is_finite_box(box: VocBox) -> bool:
    return all(math.isfinite(v) for v in (box.xmin, box.ymin, box.xmax, box.ymax))
