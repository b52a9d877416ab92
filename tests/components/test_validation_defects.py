"""`synth --defects` → ingest → validate through the real stage functions: every injected defect is
found with its code on its file, clean data raises nothing, and every good image is kept."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from components.common.io import read_json
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.conftest import TINY_CLASSES, tiny_params

CODES = (
    "IMAGE_MISSING",
    "ANNOTATION_MISSING",
    "IMAGE_CORRUPT",
    "XML_MALFORMED",
    "XML_UNSAFE",
    "EXTENSION_MISMATCH",
    "FILENAME_MISMATCH",
    "IMAGE_TOO_LARGE",
    "SIZE_MISSING",
    "SIZE_MISMATCH",
    "EXIF_ROTATED",
    "DEPTH_MISMATCH",
    "BOX_NOT_FINITE",
    "BOX_ZERO_AREA",
    "BOX_INVERTED",
    "BOX_OUT_OF_BOUNDS",
    "BOX_CLIPPED",
    "BOX_DUPLICATE",
    "BOX_NEAR_DUPLICATE",
    "BOX_LABEL_CONFLICT",
    "BOX_TOO_SMALL",
    "BOX_SIZE_OUTLIER",
    "LABEL_UNKNOWN",
    "LABEL_NORMALIZED",
    "CLASSES_TXT_CONFLICT",
    "CLASS_TOO_FEW",
    "CLASS_IMBALANCE",
    "IMAGE_DUPLICATE",
    "IMAGE_NEAR_DUPLICATE",
    "PATIENT_LEAK",
    "PATIENT_UNKNOWN",
)
DATASET_WIDE = {"CLASS_TOO_FEW", "CLASS_IMBALANCE"}


@pytest.fixture(scope="module")
def clean_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 photos of 160x120, 2 classes, 2-4 photos per patient (so a patient can span two splits)."""
    from lesionops.synth.skin import SynthConfig, generate_skin_dataset

    out = tmp_path_factory.mktemp("defects") / "clean"
    generate_skin_dataset(
        SynthConfig(
            out_dir=out,
            n_images=60,
            seed=11,
            image_width=160,
            image_height=120,
            classes=TINY_CLASSES,
            class_priors=(0.5, 0.5),
            images_per_patient_min=2,
            images_per_patient_max=4,
        ),
        progress=False,
    )
    return out


def _validate(data: Path, work: Path, classes: tuple[str, ...], **validate_params: Any) -> dict[str, Any]:
    doc = tiny_params(work, task={"classes": list(classes)}, validate_annotations=validate_params)
    ingest(section(doc, "ingest_data", IngestConfig), data, work / "ingest")
    return validate(
        section(doc, "validate_annotations", ValidateConfig),
        load_task(doc),
        work / "ingest",
        work / "validate",
        section(doc, "mlflow", TrackingConfig),
    )


@pytest.fixture(scope="module")
def defect_run(clean_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from lesionops.synth.defects import inject_defects, rare_class

    work = tmp_path_factory.mktemp("defect_run")
    data = work / "data"
    shutil.copytree(clean_dataset, data)
    injected = inject_defects(data, seed=1)
    rare = rare_class(TINY_CLASSES)
    assert rare is not None
    report = _validate(data, work, (*TINY_CLASSES, rare), max_quarantine_fraction=0.6)
    return {"work": work, "data": data, "injected": injected, "report": report}


def _hits(report: dict[str, Any], code: str, files: list[str]) -> list[dict[str, Any]]:
    return [
        f
        for f in report["findings"]
        if f["code"] == code and (code in DATASET_WIDE or f["file"] in files or f["input_file"] in files)
    ]


@pytest.mark.parametrize("code", CODES)
def test_each_injected_defect_is_found_on_its_file(defect_run: dict[str, Any], code: str) -> None:
    injected, report = defect_run["injected"], defect_run["report"]
    assert code in injected, f"inject_defects did not inject {code}"
    hits = _hits(report, code, injected[code])
    assert hits, f"{code} not reported on {injected[code]}; report has {report['by_code']}"
    if code in DATASET_WIDE:
        assert all(h["input_file"] is None and h["file"].endswith("data") for h in hits)


def _defect_images(defect_run: dict[str, Any]) -> set[str]:
    """Every image touched by a defect: same stem as an injected file, or in a broken folder."""
    bad = [Path(f) for files in defect_run["injected"].values() for f in files]
    stems = {p.stem for p in bad if p.name != "classes.txt"}
    folders = {p.parent for p in bad if p.name == "classes.txt"}
    data = defect_run["data"]
    images = [p.relative_to(data) for p in data.rglob("*") if p.suffix in (".jpg", ".png")]
    return {p.as_posix() for p in images if p.stem in stems or p.parent in folders}


def test_good_records_are_all_kept_without_findings(defect_run: dict[str, Any]) -> None:
    report, bad = defect_run["report"], _defect_images(defect_run)
    inputs = report["accepted"] + report["quarantined"]
    good = {p for p in inputs if p not in bad and not p.endswith(".xml")}
    assert len(good) >= 20
    assert good <= set(report["accepted"])
    noisy = [f for f in report["findings"] if f["input_file"] in good and f["severity"] != "info"]
    assert noisy == []


def test_every_input_is_accepted_or_quarantined_once(defect_run: dict[str, Any]) -> None:
    report, work = defect_run["report"], defect_run["work"]
    accepted, quarantined = set(report["accepted"]), set(report["quarantined"])
    assert not accepted & quarantined
    assert (
        len(accepted) + len(quarantined)
        == report["n_input_files"]
        == report["n_images"] + report["n_orphan_annotations"]
    )
    quarantine = read_json(work / "validate" / "quarantine.json")
    assert {q["file"] for q in quarantine} == quarantined
    assert all(q["codes"] for q in quarantine)
    image_errors = {f["input_file"] for f in report["findings"] if f["severity"] == "error" and f["box_index"] is None}
    assert image_errors == quarantined
    # a box-level error drops the box, listed with its file, index, code and label; the photo stays
    box_errors = {
        (f["input_file"], f["box_index"], f["code"])
        for f in report["findings"]
        if f["severity"] == "error" and f["box_index"] is not None and f["input_file"] in accepted
    }
    assert box_errors == {(d["file"], d["box_index"], d["code"]) for d in report["dropped_boxes"]}
    assert report["n_dropped_boxes"] == len(box_errors) > 0


BOX_ERRORS = (
    "BOX_NOT_FINITE",
    "BOX_ZERO_AREA",
    "BOX_INVERTED",
    "BOX_OUT_OF_BOUNDS",
    "BOX_LABEL_CONFLICT",
    "LABEL_UNKNOWN",
)


@pytest.mark.parametrize("code", BOX_ERRORS)
def test_a_box_error_drops_the_box_not_the_photo(defect_run: dict[str, Any], code: str) -> None:
    """The image keeps its other boxes and is accepted, marked unusable for detector training."""
    import pandas as pd

    report, work = defect_run["report"], defect_run["work"]
    hits = [f for f in _hits(report, code, defect_run["injected"][code]) if f["box_index"] is not None]
    assert hits, f"{code}: no box-level finding"
    table = pd.read_parquet(work / "validate" / "accepted.parquet")
    for hit in hits:
        if hit["input_file"] in report["quarantined"]:  # another, image-level defect on the same photo
            continue
        image = table[(table.row_type == "image") & (table.rel_path == hit["input_file"])].iloc[0]
        assert image.n_dropped_boxes >= 1 and not image.detection_usable
        boxes = table[(table.row_type == "box") & (table.rel_path == hit["input_file"])]
        assert hit["box_index"] not in set(boxes.box_index)


def test_reports_data_docs_and_mlflow(defect_run: dict[str, Any]) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    work, report = defect_run["work"], defect_run["report"]
    out = work / "validate"
    assert (out / "data_docs" / "index.html").is_file()
    assert report["contract"]["accepted_boxes"]["success"] and report["contract"]["accepted_images"]["success"]
    page = (out / "validation_report.html").read_text(encoding="utf-8")
    assert all(q in page for q in report["quarantined"]) and "data_docs/index.html" in page
    assert "<h2>Dropped boxes</h2>" in page and all(d["file"] in page for d in report["dropped_boxes"])
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    run = MlflowClient().get_run(report["mlflow_run_id"])
    assert run.info.run_name == "validate_annotations"
    assert run.data.metrics["findings/IMAGE_DUPLICATE/error"] == 1
    assert run.data.metrics["n_quarantined"] == len(report["quarantined"])
    assert run.data.metrics["n_dropped_boxes"] == report["n_dropped_boxes"] > 0
    assert run.data.metrics["dropped_boxes/BOX_ZERO_AREA"] == report["dropped_boxes_by_code"]["BOX_ZERO_AREA"]


def test_clean_data_raises_no_warning_and_keeps_everything(clean_dataset: Path, tmp_path: Path) -> None:
    report = _validate(clean_dataset, tmp_path, TINY_CLASSES, log_to_mlflow=False)
    serious = [f for f in report["findings"] if f["severity"] in ("warning", "error")]
    assert serious == []
    assert report["n_accepted_images"] == report["n_images"] == 60 and report["quarantined"] == []
    assert (tmp_path / "validate" / "data_docs" / "index.html").is_file()
    assert not (tmp_path / "mlruns").exists()
