"""Every real labelImg dataset in shared/real-data through the real ingest_data and validate_annotations
(and crop_patches for ldc_cells): every file accounted for, no crash, each oddity its SOURCE.md
documents found with the documented count, and no finding that inspection showed to be false.

Counts come from each SOURCE.md unless marked *inspected*: those were checked by looking at the
files (the near-duplicate pairs side by side, the size outliers on their photos), and are pinned so
that a change to a check has to be inspected again. The task is built from the labels exactly as
typed in the XML. The datasets are never modified (ingest only reads them).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.params import section
from components.common.task import load_task
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.conftest import real_dataset, tiny_params

pytestmark = [pytest.mark.xdist_group("real_data"), pytest.mark.slow]


@dataclass(frozen=True)
class RealSet:
    n_images: int  # SOURCE.md; each has an XML with the same stem and vice versa
    classes: tuple[str, ...]  # as typed in <name>
    boxes: dict[str, int]  # SOURCE.md, grep of <name>
    splits: dict[str, int]  # images per declared folder (train/test); {} for a flat folder
    border_boxes: int  # boxes that reach the image border (SOURCE.md; truncated = 1 on all of them)
    findings: dict[str, int] = field(default_factory=dict)  # by_code_severity, complete


SETS = {
    "ldc_cells": RealSet(
        1288,
        ("Living Cell", "Dead Cell"),
        {"Living Cell": 3105, "Dead Cell": 880},
        {},
        507,
        {
            "PATIENT_UNKNOWN/warning": 1288,  # no metadata.csv: every image is its own patient
            "IMAGE_DUPLICATE/error": 70,  # SOURCE.md: 70 byte-identical pairs
            "ANNOTATION_EMPTY/warning": 41,  # SOURCE.md: 41 XML without <object>
            "DEPTH_MISMATCH/info": 212,  # SOURCE.md: 212 (see test_ldc_depth_disagreements)
            "IMAGE_NEAR_DUPLICATE/warning": 62,  # inspected: the same microscope fields, shifted or re-exposed
            "BOX_SIZE_OUTLIER/warning": 5,
        },
    ),  # inspected: 2 border slivers (4x12, 21x4), 3 unusually big cells
    "playing_cards": RealSet(
        363,
        ("ace", "king", "nine", "jack", "queen", "ten"),
        {"ace": 118, "king": 118, "nine": 115, "jack": 113, "queen": 106, "ten": 100},
        {"train": 296, "test": 67},
        34,
        {"PATIENT_UNKNOWN/warning": 363, "IMAGE_NEAR_DUPLICATE/warning": 5},
    ),  # inspected: 4 pairs of consecutive phone shots + a webcam frame
    "microcontrollers": RealSet(  # resized to half (cam_image1 = cam_image54 at 480x270)
        149,
        ("ESP8266", "Heltec_ESP32_Lora", "Arduino_Nano", "Raspberry_Pi_3"),
        {"ESP8266": 47, "Heltec_ESP32_Lora": 44, "Arduino_Nano": 43, "Raspberry_Pi_3": 43},
        {"train": 142, "test": 7},
        3,
        {"PATIENT_UNKNOWN/warning": 149},
    ),
}
_RUNS: dict[str, dict[str, Any]] = {}


def _run(name: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """ingest + validate one set once per module (they are shared by several tests)."""
    if name not in _RUNS:
        source, spec = real_dataset(name), SETS[name]
        work = tmp_path_factory.mktemp(name)
        doc = tiny_params(
            work,
            task={"name": name, "classes": list(spec.classes), "models": ["classifier", "detector"]},
            validate_annotations={"log_to_mlflow": False},
        )
        manifest = ingest(section(doc, "ingest_data", IngestConfig), source, work / "ingest")
        report = validate(
            section(doc, "validate_annotations", ValidateConfig), load_task(doc), work / "ingest", work / "validate"
        )
        _RUNS[name] = {
            "source": source,
            "work": work,
            "doc": doc,
            "manifest": manifest,
            "report": report,
            "accepted": pd.read_parquet(work / "validate" / "accepted.parquet"),
        }
    return _RUNS[name]


@pytest.fixture(params=list(SETS))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    return request.param, _run(request.param, tmp_path_factory)


def _images(manifest: pd.DataFrame) -> pd.DataFrame:
    return manifest[manifest.row_type == "image"].set_index("rel_path")


def test_every_file_is_accounted_for(run: tuple[str, dict[str, Any]]) -> None:
    name, r = run
    spec, report, source = SETS[name], r["report"], r["source"]
    on_disk = [p for p in source.rglob("*") if p.is_file() and p.name != "SOURCE.md"]
    images = [p for p in on_disk if p.suffix.lower() in (".png", ".jpg")]
    xmls = [p for p in on_disk if p.suffix == ".xml"]
    assert len(images) == len(xmls) == report["n_images"] == spec.n_images
    assert len(on_disk) == len(images) + len(xmls)  # nothing else in the folder to lose
    assert report["n_orphan_annotations"] == 0 and report["n_input_files"] == len(images)
    inputs = {p.relative_to(source).as_posix() for p in images}
    accepted, quarantined = set(report["accepted"]), set(report["quarantined"])
    assert accepted | quarantined == inputs and not accepted & quarantined
    manifest = _images(r["manifest"])
    assert manifest.annotation_path.notna().all() and manifest.image_error.isna().all()
    assert manifest.declared_split.value_counts().to_dict() == spec.splits
    boxes = r["manifest"][r["manifest"].row_type == "box"]
    assert Counter(boxes.label_raw) == spec.boxes


def test_findings_are_exactly_the_documented_and_inspected_ones(run: tuple[str, dict[str, Any]]) -> None:
    name, r = run
    report = r["report"]
    assert report["by_code_severity"] == SETS[name].findings
    assert report["n_dropped_boxes"] == 0 and report["passed"]
    if name != "ldc_cells":
        assert report["quarantined"] == [] and report["n_accepted_boxes"] == sum(SETS[name].boxes.values())


def test_boxes_at_the_border_are_not_out_of_bounds(run: tuple[str, dict[str, Any]]) -> None:
    """labelImg writes 1-based inclusive pixels: a box reaching the border has xmax == width."""
    name, r = run
    manifest = r["manifest"]
    images = _images(manifest)
    boxes = manifest[manifest.row_type == "box"]
    w, h = boxes.rel_path.map(images.width), boxes.rel_path.map(images.height)
    border = boxes[(boxes.xmin <= 1) | (boxes.ymin <= 1) | (boxes.xmax >= w) | (boxes.ymax >= h)]
    assert len(border) == SETS[name].border_boxes and (border.truncated == 1).all()
    flagged = {
        (f["input_file"], f["box_index"])
        for f in r["report"]["findings"]
        if f["box_index"] is not None and f["code"] in ("BOX_OUT_OF_BOUNDS", "BOX_CLIPPED")
    }
    assert flagged == set()
    accepted = r["accepted"]
    kept = accepted[accepted.row_type == "box"].set_index(["rel_path", "box_index"]).index
    quarantined = set(r["report"]["quarantined"])
    assert all((b.rel_path, b.box_index) in kept for b in border.itertuples() if b.rel_path not in quarantined)


def test_ldc_byte_copies_keep_one_and_say_how_the_annotations_differ(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SOURCE.md: 70 pairs, only 2 with identical boxes, 60 with the same class counts: the same
    picture annotated twice, differently. SOURCE.md places them between the imageN and image_N
    series; inspected, 3 pairs are within image_N (image_984 = image_988, 985 = 989, 986 = 990)."""
    r = _run("ldc_cells", tmp_path_factory)
    images = _images(r["manifest"])
    pairs = [sorted(group.index) for _, group in images.groupby("sha256") if len(group) > 1]
    assert len(pairs) == 70 and all(len(p) == 2 for p in pairs)
    series = Counter(tuple(sorted(bool(re.search(r"/image_\d", p)) for p in pair)) for pair in pairs)
    assert series == {(False, True): 67, (True, True): 3}
    found = [f for f in r["report"]["findings"] if f["code"] == "IMAGE_DUPLICATE"]
    assert sorted(f["input_file"] for f in found) == sorted(pair[1] for pair in pairs)  # the later path goes
    assert set(r["report"]["quarantined"]) == {f["input_file"] for f in found}
    verdict = Counter(
        re.search(r"(annotations identical|same labels|annotations differ)", f["message"])[1] for f in found
    )
    assert verdict == {"annotations identical": 2, "same labels": 58, "annotations differ": 10}


def test_ldc_empty_annotations_are_detection_negatives(tmp_path_factory: pytest.TempPathFactory) -> None:
    r = _run("ldc_cells", tmp_path_factory)
    empty = [f["input_file"] for f in r["report"]["findings"] if f["code"] == "ANNOTATION_EMPTY"]
    assert Counter("image_" in Path(p).name for p in empty) == {False: 15, True: 26}  # SOURCE.md
    accepted_empty = set(empty) - set(r["report"]["quarantined"])
    assert r["report"]["n_empty_annotations"] == len(accepted_empty)
    rows = r["accepted"]
    assert set(rows.loc[rows.row_type == "image", "rel_path"]) >= accepted_empty
    assert rows.loc[rows.rel_path.isin(accepted_empty) & (rows.row_type == "image"), "detection_usable"].all()


def test_ldc_depth_disagreements(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SOURCE.md counts 212 `<depth>` disagreements by PNG colour type: 1 on 207 RGB and 1 RGBA PNG,
    3 on 4 grey (palette) PNGs. Every one is what labelImg itself writes: the 208 RGB(A) files hold
    only grey pixels (Qt calls them grey → 1) and the 4 palettes are grey but not the identity ramp
    (→ 3). So all 212 are reported, as info; a warning would be false on inspection."""
    r = _run("ldc_cells", tmp_path_factory)
    images = _images(r["manifest"])
    found = {f["input_file"]: f for f in r["report"]["findings"] if f["code"] == "DEPTH_MISMATCH"}
    assert len(found) == 212 and {f["severity"] for f in found.values()} == {"info"}
    flagged = images.loc[sorted(found)]
    assert Counter(zip(flagged["mode"], flagged.declared_depth.astype(int))) == {
        ("RGB", 1): 207,
        ("RGBA", 1): 1,
        ("P", 3): 4,
    }
    assert flagged.grey_pixels.all()
    assert sorted(Path(p).stem for p in flagged.index[flagged["mode"] == "P"]) == ["c (5)", "c (62)", "c (65)", "c (7)"]


def test_ldc_duplicates_never_straddle_splits(tmp_path_factory: pytest.TempPathFactory) -> None:
    """crop_patches on ldc_cells: no byte-identical or near-duplicate pair (recomputed here from the
    manifest's hashes, independently of validation) has crops, or detection images, in two splits."""
    from components.crop_patches.config import CropConfig
    from components.crop_patches.core import run as crop

    r = _run("ldc_cells", tmp_path_factory)
    out = r["work"] / "crop"
    crop(section(r["doc"], "crop_patches", CropConfig), load_task(r["doc"]), r["work"] / "validate", r["source"], out)
    split = pd.read_parquet(out / "crops.parquet").groupby("rel_path").split.agg(set)
    detection = pd.read_parquet(out / "detection" / "detection.parquet").groupby("rel_path").split.agg(set)
    images = _images(r["manifest"])
    threshold = section(r["doc"], "validate_annotations", ValidateConfig).near_duplicate_phash_distance
    hashes = {rel: int(h, 16) for rel, h in images.phash.items()}
    near = [(a, b) for a, b in combinations(sorted(hashes), 2) if (hashes[a] ^ hashes[b]).bit_count() <= threshold]
    copies = [tuple(g.index) for _, g in images.groupby("sha256") if len(g) > 1]
    assert len(near) >= 62 and len(copies) == 70
    for where in (split, detection):
        for a, b in near + copies:
            both = where.get(a, set()) | where.get(b, set())
            assert len(both) <= 1, f"{a} and {b} are in {both}"
    report = pd.read_json(out / "crop_report.json", typ="series")
    groups = report["split_groups"]
    assert groups["n_merged_groups"] >= 50 and groups["largest"]["n_images"] <= 10
    assert not any("split group" in w for w in report["warnings"])  # no near-duplicate chain past 5 %
    assert report["empty_images"]["detection_negatives"] == r["report"]["n_empty_annotations"]
    assert report["detection"]["left_out_partial"]["n"] == 0
