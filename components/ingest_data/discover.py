"""Find the images in a staged dataset folder and pair each with its annotation, whatever the format.

Pairing rules (first match wins), chosen to match how labelImg and common exporters lay files out:
VOC `<stem>.xml` beside the image or in a sibling `Annotations/` folder (VOC devkit layout); YOLO
`<stem>.txt` beside the image or in a sibling `labels/` folder next to `images/`; CreateML entries by
image name. Annotation files that pair with no image become orphans so validation can report
IMAGE_MISSING instead of silently dropping an expert's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.formats import CLASSES_FILE, find_classes_file, load_createml

_SKIP_DIRS = {"__MACOSX"}  # macOS zip resource forks: `._name.jpg` files that are not images


@dataclass(frozen=True)
class Pairing:
    """One image and where its annotation comes from (None: no annotation found)."""

    image: Path
    rel: str
    ann_format: str | None = None  # voc | yolo | createml | folder
    ann_path: Path | None = None
    createml_entry: dict[str, Any] | None = None


@dataclass(frozen=True)
class Orphan:
    rel: str
    ann_format: str
    path: Path


@dataclass(frozen=True)
class Inventory:
    pairs: list[Pairing]
    orphans: list[Orphan]
    ignored_json: list[str]


def _visible_files(root: Path) -> list[Path]:
    """Every data file; hidden files/folders (.DS_Store, our .part downloads) are never data."""
    out = []
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in _SKIP_DIRS for p in parts) or not path.is_file():
            continue
        out.append(path)
    return sorted(out)


def _createml_index(root: Path, jsons: list[Path]) -> tuple[dict[Path, tuple[Path, dict[str, Any]]], list[str]]:
    """Image path → (json file, entry); entries name images relative to the JSON's folder."""
    index: dict[Path, tuple[Path, dict[str, Any]]] = {}
    ignored: list[str] = []
    for js in jsons:
        entries = load_createml(js)
        if entries is None:
            ignored.append(js.relative_to(root).as_posix())
            continue
        for name, entry in entries.items():
            index[(js.parent / name).resolve()] = (js, entry)
    return index, ignored


def voc_candidates(image: Path) -> list[Path]:
    """Where labelImg / the VOC devkit put an image's XML: beside it, or in a sibling `Annotations/`."""
    return [image.with_suffix(".xml"), image.parent.parent / "Annotations" / f"{image.stem}.xml"]


def _yolo_candidates(image: Path) -> list[Path]:
    out = [image.with_suffix(".txt")]
    if image.parent.name == "images":
        out.append(image.parent.parent / "labels" / f"{image.stem}.txt")
    return [t for t in out if t.name != CLASSES_FILE]


def _first_file(candidates: list[Path]) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def _pair(image: Path, root: Path, layout: str, createml: dict[Path, tuple[Path, dict[str, Any]]]) -> Pairing:
    rel = image.relative_to(root).as_posix()
    if layout == "folder_per_class":
        return Pairing(image, rel, "folder")
    if xml := _first_file(voc_candidates(image)):
        return Pairing(image, rel, "voc", xml)
    if txt := _first_file(_yolo_candidates(image)):
        return Pairing(image, rel, "yolo", txt)
    if createml and (hit := createml.get(image.resolve())):
        return Pairing(image, rel, "createml", hit[0], hit[1])
    return Pairing(image, rel, None)


def discover(root: Path, extensions: set[str], layout: str) -> Inventory:
    """All images with their pairing, plus annotation files/entries whose image is missing."""
    files = _visible_files(root)
    images = [p for p in files if p.suffix.lower() in extensions]
    createml, ignored = _createml_index(root, [p for p in files if p.suffix.lower() == ".json"])
    pairs = [_pair(p, root, layout, createml) for p in images]
    # A file that *could* pair with an existing image is not an orphan even if another format won
    # (labelImg users often save both VOC and YOLO for the same photo).
    used = {c for p in images for c in (*voc_candidates(p), *_yolo_candidates(p))}
    orphans = [
        Orphan(p.relative_to(root).as_posix(), "voc", p) for p in files if p.suffix.lower() == ".xml" and p not in used
    ]
    orphans += [
        Orphan(p.relative_to(root).as_posix(), "yolo", p)
        for p in files
        if p.suffix.lower() == ".txt"
        and p.name != CLASSES_FILE
        and p not in used
        and find_classes_file(p, root) is not None
    ]
    paired = {p.image.resolve() for p in pairs if p.ann_format == "createml"}
    orphans += [
        Orphan(f"{js.relative_to(root).as_posix()}#{entry['image']}", "createml", js)
        for img, (js, entry) in sorted(createml.items(), key=lambda kv: str(kv[0]))
        if img not in paired
    ]
    return Inventory(pairs, orphans, ignored)
