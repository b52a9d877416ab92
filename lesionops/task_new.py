"""`lesionops task new --from DIR --out FILE.yaml`: a task file from a folder of real annotations.

The folder is read by ingest_data itself (header-only decode: sizes, formats, labels, no pixels),
so whatever ingest accepts — VOC, YOLO + classes.txt, CreateML, folder-per-class, a .zip or an
s3:// prefix — is what the scan sees. The labels are reported exactly as typed, spelling variants
that match by key (`wbc` / `WBC `) become one class with aliases, and the proposals (sample,
models, patch size, patient pattern) are written as a commented YAML file that `--task` reads.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import yaml

from components.common.errors import DataError
from components.common.formats import SPLIT_NAMES
from components.common.task import TaskConfig, label_key, usable_label
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest

PATCH_SIZES = (64, 96, 128)  # CPU-friendly; smaller boxes are upsampled less than they would be lost
# Patient ids that file names commonly carry: `P012_3.jpg`, `patient-7 (2).png`, `case12_a.png`.
PATIENT_PATTERNS = (
    r"^(?i:patient|pat|case|subject|subj|id)[_\- ]?(?P<patient>\d+)",
    r"^(?P<patient>[A-Za-z]{0,3}\d+)[_\- ]",
)


@dataclass(frozen=True)
class LabelCount:
    """One label exactly as typed, with how often it was used."""

    typed: str
    boxes: int
    images: int


@dataclass(frozen=True)
class Scan:
    """What a folder holds, as far as a task file needs to know."""

    source: str
    layout: str
    n_images: int
    n_annotated: int
    n_empty: int
    formats: dict[str, int]
    labels: list[LabelCount]
    box_sides: np.ndarray  # the longer side of every box, in pixels
    rel_paths: list[str]
    has_metadata_patients: bool


def _ingest(source: str, layout: str, work: Path) -> pd.DataFrame:
    cfg = IngestConfig(layout=layout, decode="header", cache_dir=str(work / "cache"))
    return ingest(cfg, source, work / f"manifest-{layout}")


def _class_folders(rels: list[str]) -> set[str]:
    """Parent folder names that could be labels (split folders such as train/ are not)."""
    return {p.split("/")[-2] for p in rels if "/" in p and p.split("/")[-2].lower() not in SPLIT_NAMES}


def scan(source: str) -> Scan:
    """Read `source` with ingest_data; fall back to folder-per-class when no annotation pairs up."""
    with tempfile.TemporaryDirectory(prefix="lesionops-task-new-") as tmp:
        manifest, layout = _ingest(source, "auto", Path(tmp)), "auto"
        images = manifest[manifest.row_type == "image"]
        if images.annotation_format.isna().all() and len(_class_folders(images.rel_path.tolist())) >= 2:
            manifest, layout = _ingest(source, "folder_per_class", Path(tmp)), "folder_per_class"
    return _summarise(source, layout, manifest)


def _summarise(source: str, layout: str, manifest: pd.DataFrame) -> Scan:
    images = manifest[manifest.row_type == "image"]
    boxes = manifest[manifest.row_type == "box"]
    if layout == "folder_per_class":
        typed = images.image_label.dropna().astype(str)
        labels = [LabelCount(t, 0, int(n)) for t, n in typed.value_counts().items()]
    elif len(boxes):
        per_image = boxes.groupby("label_raw")["rel_path"].nunique()
        labels = [LabelCount(str(t), int(n), int(per_image[t])) for t, n in boxes.label_raw.value_counts().items()]
    else:
        labels = []
    annotated = images.annotation_format.notna() & images.annotation_error.isna()
    with_boxes = set(boxes.rel_path)
    sides = (
        np.maximum(boxes.xmax - boxes.xmin, boxes.ymax - boxes.ymin).to_numpy(dtype=float)
        if len(boxes)
        else np.zeros(0)
    )
    return Scan(
        source=source,
        layout=layout,
        n_images=len(images),
        n_annotated=int(annotated.sum()),
        n_empty=int((annotated & ~images.rel_path.isin(with_boxes)).sum()) if layout != "folder_per_class" else 0,
        formats={str(k): int(v) for k, v in images.annotation_format.fillna("none").value_counts().items()},
        labels=sorted(labels, key=lambda c: (-max(c.boxes, c.images), c.typed)),
        box_sides=sides[np.isfinite(sides) & (sides > 0)],
        rel_paths=images.rel_path.tolist(),
        has_metadata_patients=bool((images.patient_source == "metadata").any()),
    )


@dataclass(frozen=True)
class Taxonomy:
    """Classes (display names) and the aliases that map every other typed spelling onto them."""

    classes: tuple[str, ...]
    aliases: dict[str, str]
    notes: dict[str, str]  # typed label → why it became an alias (for the file's comments)
    unusable: list[str]  # labels with no letter or digit


def group_labels(labels: list[LabelCount], rare_below: int) -> Taxonomy:
    """Spellings with one key are one class named by its most used spelling; a rare label that
    looks like a misspelling of a common one (difflib ratio ≥ 0.85) becomes its alias, noted."""
    by_key: dict[str, list[LabelCount]] = defaultdict(list)
    unusable = [c.typed for c in labels if not usable_label(c.typed)]
    for c in labels:
        if usable_label(c.typed):
            by_key[label_key(c.typed)].append(c)
    count = {k: sum(max(c.boxes, c.images) for c in v) for k, v in by_key.items()}
    display = {k: max(v, key=lambda c: (max(c.boxes, c.images), c.typed)).typed.strip() for k, v in by_key.items()}
    aliases, notes = {}, {}
    for key in sorted(by_key, key=lambda k: -count[k]):
        common = [k for k in by_key if count[k] >= rare_below and k != key]
        match = difflib.get_close_matches(key, common, n=1, cutoff=0.85) if count[key] < rare_below else []
        if match:
            aliases[display[key]] = display[match[0]]
            notes[display[key]] = f"only {count[key]} use(s); looks like a misspelling of {display[match[0]]!r} — check"
        for c in by_key[key]:
            if c.typed.strip() != display[key] and not match:
                aliases[c.typed.strip()] = display[key]
                notes[c.typed.strip()] = f"same class as {display[key]!r} once case and spaces are ignored"
    classes = tuple(display[k] for k in sorted(by_key, key=lambda k: -count[k]) if display[k] not in aliases)
    return Taxonomy(classes, aliases, notes, unusable)


def propose_patch_size(box_sides: np.ndarray, context_margin: float) -> int:
    """The smallest patch in PATCH_SIZES that holds the median box window without shrinking it."""
    if not len(box_sides):
        return PATCH_SIZES[0]
    window = float(np.median(box_sides)) * (1 + 2 * context_margin)
    return next((s for s in PATCH_SIZES if s >= window), PATCH_SIZES[-1])


def propose_patient_pattern(rel_paths: list[str]) -> tuple[str | None, str]:
    """A pattern that finds a patient id in ≥ 90 % of file names *and* groups several photos per id;
    otherwise None (each image is then its own group), with the reason."""
    stems = [PurePosixPath(p).stem for p in rel_paths]
    for pattern in PATIENT_PATTERNS:
        ids = [m.group("patient") for s in stems if (m := re.search(pattern, s))]
        if len(ids) >= 0.9 * len(stems) and len(set(ids)) <= 0.8 * len(ids) and len(set(ids)) >= 3:
            return pattern, f"{len(set(ids))} ids over {len(ids)} images, e.g. {stems[0]!r} → {ids[0]!r}"
    return None, "no patient id found in file names: each image is its own group"


def task_name(source: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", label_key(PurePosixPath(source.rstrip("/")).name)).strip("_")
    return name or "my_task"


def build_document(found: Scan, name: str, base: dict[str, Any]) -> tuple[dict[str, Any], Taxonomy, dict[str, str]]:
    """The task document and the reasons for each proposal (written as comments)."""
    rare = int(base.get("validate_annotations", {}).get("min_boxes_per_class", 10))
    taxonomy = group_labels(found.labels, rare)
    if not taxonomy.classes:
        raise DataError(
            found.source,
            "no labels found: neither boxes (VOC, YOLO + classes.txt, CreateML) nor "
            "one folder per class; nothing to learn from",
        )
    whole = found.layout == "folder_per_class"
    models = ["classifier"] if len(taxonomy.classes) > 1 else ["detector"]
    if whole and len(taxonomy.classes) < 2:
        raise DataError(
            found.source,
            f"one class folder ({taxonomy.classes[0]!r}) and no boxes: a classifier needs at least 2 classes",
        )
    margin = float(base.get("crop_patches", {}).get("context_margin", 0.1))
    size = propose_patch_size(found.box_sides, margin) if not whole else int(base["crop_patches"]["patch_size"])
    pattern, why_pattern = (
        (None, "metadata.csv gives patient ids")
        if found.has_metadata_patients
        else propose_patient_pattern(found.rel_paths)
    )
    task: dict[str, Any] = {
        "name": name,
        "data": found.source,
        "sample": "whole_image" if whole else "patches",
        "models": models,
        "classes": list(taxonomy.classes),
        "aliases": taxonomy.aliases,
    }
    doc: dict[str, Any] = {
        "task": task,
        "ingest_data": {"layout": found.layout, "patient_pattern": pattern},
        "crop_patches": {"patch_size": size},
        "train_model": {"image_size": size},
        "train_baseline": {"image_size": size},
        "mlflow": {"registered_model": f"{name}_classifier", "registered_detector": f"{name}_detector"},
    }
    TaskConfig(**{**task, "classes": tuple(task["classes"]), "models": tuple(models)})  # refuse a broken file now
    why = {
        "models": "one label: boxes of one kind are a detection task"
        if models == ["detector"]
        else "add detector to also train Faster R-CNN on the raw images (slow without a GPU)",
        "patch_size": (
            f"median box {np.median(found.box_sides):.0f} px + margin; boxes are resized to this"
            if len(found.box_sides)
            else "no boxes: params.yaml default"
        ),
        "patient_pattern": why_pattern,
    }
    return doc, taxonomy, why


def _dump(value: Any) -> str:
    """One YAML flow value on one line (wrapped in a list so a plain scalar gets no `...` end marker)."""
    return yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=10_000).strip()[1:-1]


def render(doc: dict[str, Any], found: Scan, taxonomy: Taxonomy, why: dict[str, str]) -> str:
    """The task file: every value from `doc` (YAML-escaped), with the scan and the reasons as comments."""
    task = doc["task"]
    lines = [
        f"# Task file for {found.source} — written by `lesionops task new`.",
        f"# {found.n_images} images ({_dump(found.formats)} annotations), {found.n_empty} annotated with no box.",
        "# Labels exactly as typed (boxes / images):",
    ]
    lines += [f"#   {c.typed!r}: {c.boxes} / {c.images}" for c in found.labels]
    lines += [f"#   {u!r}: has no letter or digit and cannot be a class" for u in taxonomy.unusable]
    lines += [
        "# Use it:  lesionops pipeline run --task THIS_FILE   (then: lesionops champion --task THIS_FILE)",
        "",
        "task:",
        f"  name: {_dump(task['name'])}",
        f"  data: {_dump(task['data'])}   # the folder scanned: pipeline run's default --source",
        f"  sample: {_dump(task['sample'])}",
        f"  models: {_dump(task['models'])}   # {why['models']}",
        f"  classes: {_dump(task['classes'])}",
    ]
    if task["aliases"]:
        lines.append("  aliases:                   # typed spelling → class")
        lines += [f"    {_dump(k)}: {_dump(v)}   # {taxonomy.notes.get(k, '')}" for k, v in task["aliases"].items()]
    else:
        lines.append("  aliases: {}                # labels match classes ignoring case, spaces, hyphens, underscores")
    lines += [
        "",
        "ingest_data:",
        f"  layout: {_dump(doc['ingest_data']['layout'])}",
        f"  patient_pattern: {_dump(doc['ingest_data']['patient_pattern'])}   # {why['patient_pattern']}",
        "",
        "crop_patches:",
        f"  patch_size: {doc['crop_patches']['patch_size']}   # {why['patch_size']}",
        "train_model:",
        f"  image_size: {doc['train_model']['image_size']}",
        "train_baseline:",
        f"  image_size: {doc['train_baseline']['image_size']}",
        "",
        "mlflow:                      # this task's own registry entries",
        f"  registered_model: {_dump(doc['mlflow']['registered_model'])}",
        f"  registered_detector: {_dump(doc['mlflow']['registered_detector'])}",
        "",
    ]
    return "\n".join(lines)


def new_task(source: str, out: Path, base: dict[str, Any], name: str | None = None) -> tuple[Scan, dict[str, Any]]:
    """Scan `source`, write the task file to `out`; returns the scan and the document written."""
    local = Path(source).expanduser()
    found = scan(str(local.resolve()) if local.exists() else source)
    doc, taxonomy, why = build_document(found, name or task_name(found.source), base)
    text = render(doc, found, taxonomy, why)
    if yaml.safe_load(text) != doc:  # a bug here, never the data's: comments must not change a value
        raise RuntimeError(f"task new: the rendered file does not read back as {doc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return found, doc
