"""Break a generated labelImg dataset on purpose, one known defect per file, to test validation.

`inject_defects` works on the output of `generate_skin_dataset` (images/*.jpg with labelImg XML
beside each, metadata.csv) and returns, per finding code, the files it broke, named as the
validation report names them (the XML for annotation defects, the image otherwise, the dataset-
wide codes with the file that causes them). Each defect goes into its own, otherwise clean image,
so any finding on an image not listed is a false alarm. The same seed breaks the same files.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import struct
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from components.common.errors import ConfigError
from components.common.voc import VocAnnotation, read_voc
from lesionops.synth.skin import DEFAULT_CLASSES

Injected = dict[str, list[str]]
BOMB_SIDE = 20_000  # 400 Mpx: over twice Pillow's default limit, so opening it refuses to decode


@dataclass
class _Ctx:
    """The dataset being broken: which images are still clean, and metadata.csv in memory."""

    root: Path
    rng: np.random.Generator
    free: list[Path]
    meta: list[dict[str, str]]
    labels: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def take(
        self, ok: Callable[[Path, VocAnnotation], bool] = lambda p, a: bool(a.boxes)
    ) -> tuple[Path, VocAnnotation]:
        """An unused image (and its annotation) for which `ok` holds; each image is broken once."""
        for jpg in list(self.free):
            ann = read_voc(jpg.with_suffix(".xml"))
            if ok(jpg, ann):
                self.free.remove(jpg)
                return jpg, ann
        raise ConfigError(f"{self.root}: not enough clean images left to inject every defect; generate more")


def _edit_xml(xml: Path, pattern: str, repl: str) -> None:
    text, n = re.subn(pattern, repl, xml.read_text(encoding="utf-8"), count=1)
    if n != 1:
        raise ConfigError(f"{xml}: cannot inject a defect, {pattern!r} not found")
    xml.write_text(text, encoding="utf-8")


def _add_object(xml: Path, name: str, coords: tuple[object, object, object, object]) -> None:
    """Append one labelImg <object> with coordinates written verbatim (so 'nan' stays 'nan')."""
    tags = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), coords, strict=True))
    obj = (
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox>{tags}</bndbox></object>\n"
    )
    _edit_xml(xml, r"</annotation>\s*$", obj + "</annotation>\n")


def _box(ann: VocAnnotation, i: int = 0) -> tuple[int, int, int, int]:
    b = ann.boxes[i]
    return int(b.xmin), int(b.ymin), int(b.xmax), int(b.ymax)


# --- files -----------------------------------------------------------------------------------


def _corrupt(c: _Ctx) -> Injected:
    truncated, _ = c.take()
    raw = truncated.read_bytes()
    truncated.write_bytes(raw[: len(raw) // 3])
    empty, _ = c.take()
    empty.write_bytes(b"")
    return {"IMAGE_CORRUPT": [c.rel(truncated), c.rel(empty)]}


def _xml_malformed(c: _Ctx) -> Injected:
    jpg, _ = c.take()
    jpg.with_suffix(".xml").write_text(f"<annotation><filename>{jpg.name}</filename>", encoding="utf-8")
    return {"XML_MALFORMED": [c.rel(jpg.with_suffix(".xml"))]}


def _xml_unsafe(c: _Ctx) -> Injected:
    """An internal entity: harmless here, but the same syntax carries billion-laughs and XXE."""
    jpg, _ = c.take()
    xml = jpg.with_suffix(".xml")
    _edit_xml(xml, r"<database>[^<]*</database>", "<database>&who;</database>")
    xml.write_text(
        '<!DOCTYPE annotation [<!ENTITY who "labelImg">]>\n' + xml.read_text(encoding="utf-8"), encoding="utf-8"
    )
    return {"XML_UNSAFE": [c.rel(xml)]}


def _extension_mismatch(c: _Ctx) -> Injected:
    jpg, _ = c.take()
    with Image.open(jpg) as img:
        pixels = img.copy()
    buf = io.BytesIO()
    pixels.save(buf, "PNG")
    jpg.write_bytes(buf.getvalue())
    return {"EXTENSION_MISMATCH": [c.rel(jpg)]}


def _filename_mismatch(c: _Ctx) -> Injected:
    jpg, _ = c.take()
    _edit_xml(jpg.with_suffix(".xml"), r"<filename>[^<]*</filename>", f"<filename>{jpg.stem}.png</filename>")
    return {"FILENAME_MISMATCH": [c.rel(jpg.with_suffix(".xml"))]}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _too_large(c: _Ctx) -> Injected:
    """A 100-byte PNG whose header claims 20000x20000: a decompression bomb in miniature."""
    jpg, _ = c.take()
    png = jpg.with_suffix(".png")
    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 8, 2, 0, 0, 0)
    png.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )
    jpg.unlink()
    _edit_xml(jpg.with_suffix(".xml"), r"<filename>[^<]*</filename>", f"<filename>{png.name}</filename>")
    for row in c.meta:
        if row["filename"] == jpg.name:
            row["filename"] = png.name
    return {"IMAGE_TOO_LARGE": [c.rel(png)]}


def _image_missing(c: _Ctx) -> Injected:
    jpg, _ = c.take()
    jpg.unlink()
    return {"IMAGE_MISSING": [c.rel(jpg.with_suffix(".xml"))]}


def _annotation_missing(c: _Ctx) -> Injected:
    jpg, _ = c.take()
    jpg.with_suffix(".xml").unlink()
    return {"ANNOTATION_MISSING": [c.rel(jpg)]}


# --- size ------------------------------------------------------------------------------------


def _size(c: _Ctx) -> Injected:
    out: Injected = {}
    for code, tag, value in (("SIZE_MISSING", "width", "0"), ("DEPTH_MISMATCH", "depth", "1")):
        jpg, _ = c.take()
        _edit_xml(jpg.with_suffix(".xml"), rf"<{tag}>\d+</{tag}>", f"<{tag}>{value}</{tag}>")
        out[code] = [c.rel(jpg.with_suffix(".xml"))]
    jpg, ann = c.take()
    xml = jpg.with_suffix(".xml")
    _edit_xml(
        xml, r"<width>\d+</width>\s*<height>\d+</height>", f"<width>{ann.height}</width><height>{ann.width}</height>"
    )
    out["SIZE_MISMATCH"] = [c.rel(xml)]
    jpg, _ = c.take()
    with Image.open(jpg) as img:
        pixels, exif = img.copy(), img.getexif()
    exif[0x0112] = 6  # "rotate 90° CW to display"; the pixels stay as labelImg saw them
    pixels.save(jpg, "JPEG", quality=90, exif=exif)
    out["EXIF_ROTATED"] = [c.rel(jpg)]
    return out


# --- boxes and labels ------------------------------------------------------------------------


def _fits(ann: VocAnnotation) -> bool:
    """Room for a whole-image box that no existing box near-duplicates."""
    return bool(ann.boxes) and all(b.width * b.height < 0.5 * ann.width * ann.height for b in ann.boxes)


def _boxes(c: _Ctx) -> Injected:
    out: Injected = {}
    simple = {
        "BOX_NOT_FINITE": lambda a: ("nan", 10, 40, 40),
        "BOX_ZERO_AREA": lambda a: (20, 20, 20, 50),
        "BOX_INVERTED": lambda a: (50, 20, 20, 50),
        "BOX_OUT_OF_BOUNDS": lambda a: (10, 10, a.width + 30, 50),
        "BOX_CLIPPED": lambda a: (0, 10, 40, 50),
        "BOX_TOO_SMALL": lambda a: (10, 10, 12, 12),
        "BOX_DUPLICATE": lambda a: _box(a),
        "BOX_SIZE_OUTLIER": lambda a: (1, 1, a.width, a.height),
    }
    for code, coords in simple.items():
        jpg, ann = c.take(lambda p, a: _fits(a)) if code == "BOX_SIZE_OUTLIER" else c.take()
        _add_object(jpg.with_suffix(".xml"), ann.boxes[0].name, coords(ann))
        out[code] = [c.rel(jpg.with_suffix(".xml"))]
    jpg, ann = c.take(lambda p, a: bool(a.boxes) and a.boxes[0].width >= 40)
    x0, y0, x1, y1 = _box(ann)
    dx = 2 if x1 + 2 <= ann.width else -2  # Ctrl+D, then nudged 2 px: IoU still >= 0.9
    _add_object(jpg.with_suffix(".xml"), ann.boxes[0].name, (x0 + dx, y0, x1 + dx, y1))
    out["BOX_NEAR_DUPLICATE"] = [c.rel(jpg.with_suffix(".xml"))]
    jpg, ann = c.take()
    other = next((x for x in c.labels if x != ann.boxes[0].name), None)
    if other is not None:
        _add_object(jpg.with_suffix(".xml"), other, _box(ann))
        out["BOX_LABEL_CONFLICT"] = [c.rel(jpg.with_suffix(".xml"))]
    return out


def _labels(c: _Ctx) -> Injected:
    out: Injected = {}
    jpg, _ = c.take()
    _edit_xml(jpg.with_suffix(".xml"), r"<name>[^<]*</name>", "<name>acne</name>")
    out["LABEL_UNKNOWN"] = [c.rel(jpg.with_suffix(".xml"))]
    jpg, ann = c.take()
    typed = ann.boxes[0].name.replace("_", " ").title()
    _edit_xml(jpg.with_suffix(".xml"), r"<name>[^<]*</name>", f"<name>  {typed} </name>")
    out["LABEL_NORMALIZED"] = [c.rel(jpg.with_suffix(".xml"))]
    rare = rare_class(c.labels)
    if rare is not None:  # one box of a taxonomy class the dataset otherwise lacks
        jpg, _ = c.take()
        _edit_xml(jpg.with_suffix(".xml"), r"<name>[^<]*</name>", f"<name>{rare}</name>")
        out["CLASS_TOO_FEW"] = out["CLASS_IMBALANCE"] = [c.rel(jpg.with_suffix(".xml"))]
    return out


def rare_class(labels: Collection[str]) -> str | None:
    """The class `inject_defects` makes rare: the first default class the dataset does not use."""
    return next((x for x in DEFAULT_CLASSES if x not in labels), None)


# --- dataset ---------------------------------------------------------------------------------


def _copy_with_xml(c: _Ctx, jpg: Path, suffix: str, quality: int | None) -> Path:
    """A second upload of the same photo (byte copy, or re-encoded), its XML and metadata row."""
    copy = jpg.with_name(f"{jpg.stem}{suffix}.jpg")
    if quality is None:
        shutil.copyfile(jpg, copy)
    else:
        with Image.open(jpg) as img:
            img.save(copy, "JPEG", quality=quality)
    xml = (
        jpg.with_suffix(".xml")
        .read_text(encoding="utf-8")
        .replace(f"<filename>{jpg.name}</filename>", f"<filename>{copy.name}</filename>")
    )
    copy.with_suffix(".xml").write_text(xml, encoding="utf-8")
    row = next(r for r in c.meta if r["filename"] == jpg.name)
    c.meta.append({**row, "filename": copy.name})
    return copy


def _duplicates(c: _Ctx) -> Injected:
    jpg, _ = c.take()
    dup = _copy_with_xml(c, jpg, "_dup", None)
    jpg, _ = c.take()
    near = _copy_with_xml(c, jpg, "_reenc", 80)
    return {"IMAGE_DUPLICATE": [c.rel(dup)], "IMAGE_NEAR_DUPLICATE": [c.rel(near)]}


def _patients(c: _Ctx) -> Injected:
    jpg, _ = c.take()
    c.meta[:] = [r for r in c.meta if r["filename"] != jpg.name]
    out: Injected = {"PATIENT_UNKNOWN": [c.rel(jpg)]}
    patient = {r["filename"]: r["patient_id"] for r in c.meta}
    first, _ = c.take(lambda p, a: sum(patient.get(q.name) == patient.get(p.name) for q in c.free) >= 2)
    second, _ = c.take(lambda p, a: patient.get(p.name) == patient.get(first.name))
    moved = []
    for jpg, split in ((first, "train"), (second, "test")):
        (jpg.parent / split).mkdir(exist_ok=True)
        for f in (jpg, jpg.with_suffix(".xml")):
            f.rename(jpg.parent / split / f.name)
        moved.append(c.rel(jpg.parent / split / jpg.name))
    out["PATIENT_LEAK"] = moved
    return out


def _yolo(c: _Ctx) -> Injected:
    """Two labelImg YOLO folders whose classes.txt list the same classes in another order."""
    if len(c.labels) < 2:
        return {}
    written = []
    for folder, classes in (("yolo_a", sorted(c.labels)), ("yolo_b", sorted(c.labels, reverse=True))):
        jpg, ann = c.take()
        dest = jpg.parent / folder
        dest.mkdir(exist_ok=True)
        jpg.rename(dest / jpg.name)
        jpg.with_suffix(".xml").unlink()
        lines = [
            f"{classes.index(b.name)} {(b.xmin + b.xmax) / 2 / ann.width:.6f} "
            f"{(b.ymin + b.ymax) / 2 / ann.height:.6f} {b.width / ann.width:.6f} {b.height / ann.height:.6f}"
            for b in ann.boxes
        ]
        (dest / f"{jpg.stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (dest / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
        written.append(c.rel(dest / "classes.txt"))
    return {"CLASSES_TXT_CONFLICT": written}


_INJECTORS: dict[str, Callable[[_Ctx], Injected]] = {
    "files": lambda c: {
        **_corrupt(c),
        **_xml_malformed(c),
        **_xml_unsafe(c),
        **_extension_mismatch(c),
        **_filename_mismatch(c),
        **_image_missing(c),
        **_annotation_missing(c),
    },
    "too_large": _too_large,
    "size": _size,
    "boxes": _boxes,
    "labels": _labels,
    "duplicates": _duplicates,
    "patients": _patients,
    "yolo": _yolo,
}
GROUPS = tuple(_INJECTORS)


def _read_meta(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_meta(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def inject_defects(dataset_dir: Path, seed: int, groups: Collection[str] | None = None) -> Injected:
    """Break `dataset_dir` in place; returns {finding code: [files it should name]}.

    `groups` picks a subset of GROUPS (default: all). About 35 images are used; a code missing
    from the result could not be injected into this dataset (e.g. CLASS_TOO_FEW when every default
    class already has boxes, BOX_LABEL_CONFLICT with a single class).
    """
    chosen = list(GROUPS if groups is None else groups)
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        raise ConfigError(f"inject_defects: unknown group(s) {unknown}; known: {list(GROUPS)}")
    images = sorted((dataset_dir / "images").glob("*.jpg"))
    if not images or not (dataset_dir / "metadata.csv").is_file():
        raise ConfigError(f"{dataset_dir}: not a generated dataset (images/*.jpg and metadata.csv)")
    rng = np.random.default_rng([seed, 99])
    order = [images[i] for i in rng.permutation(len(images))]
    labels = sorted({b.name for p in images for b in read_voc(p.with_suffix(".xml")).boxes})
    ctx = _Ctx(dataset_dir, rng, order, _read_meta(dataset_dir / "metadata.csv"), labels)
    injected: Injected = {}
    for group in chosen:
        injected.update(_INJECTORS[group](ctx))
    _write_meta(dataset_dir / "metadata.csv", ctx.meta)
    return injected
