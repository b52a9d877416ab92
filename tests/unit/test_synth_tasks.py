"""The seed systems' generators: what they write is accepted by ingest_data + validate_annotations
exactly as a user's dataset would be, deterministically, with patients from metadata.csv."""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from components.common.errors import ConfigError
from components.common.params import load_params, section
from components.common.settings import load_preset
from components.common.task import load_task
from components.common.voc import read_voc
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from lesionops.presets import Generated, generate, synth_settings
from tests.conftest import REPO

# preset → tiny image size (width, height): fast, yet every structure is still drawn
TINY = {"acupoint": (96, 128), "chest_xray": (96, 96), "ct_pneumonia": (64, 64), "monkeypox": (80, 64)}
# on 24 images every class is under validate's min_boxes_per_class, and look-alike films are expected
ALLOWED_FINDINGS = {"CLASS_TOO_FEW", "IMAGE_NEAR_DUPLICATE", "LABEL_NORMALIZED"}


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load_params(REPO / "params.yaml")


def _doc(preset: str, base: dict[str, Any]) -> dict[str, Any]:
    doc = load_preset(preset, base)
    doc["validate_annotations"]["log_to_mlflow"] = False
    return doc


def _generate(preset: str, doc: dict[str, Any], out: Path, n: int = 24, **kw: Any) -> Generated:
    w, h = TINY[preset]
    settings = dataclasses.replace(synth_settings(doc), n_images=n, image_width=w, image_height=h, **kw)
    return generate(settings, tuple(doc["task"]["classes"]), out, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("preset", sorted(TINY))
def test_generated_dataset_is_accepted_by_ingest_and_validation(
    preset: str, base: dict[str, Any], tmp_path: Path
) -> None:
    doc = _doc(preset, base)
    task = load_task(doc)
    data = tmp_path / "data"
    done = _generate(preset, doc, data)
    assert done.n_images == 24 and set(done.per_class) == set(task.classes)

    manifest = ingest(section(doc, "ingest_data", IngestConfig), data, tmp_path / "ingest")
    images = manifest[manifest.row_type == "image"]
    assert len(images) == 24 and images.image_error.isna().all() and images.annotation_error.isna().all()
    assert (images.patient_source == "metadata").all()  # metadata.csv names every file's patient
    assert images.patient_id.nunique() == done.n_patients

    report = validate(
        section(doc, "validate_annotations", ValidateConfig), task, tmp_path / "ingest", tmp_path / "validate"
    )
    codes = Counter(f["code"] for f in report["findings"])
    assert report["passed"] and report["n_quarantined"] == 0 and report["n_accepted_images"] == 24
    assert set(codes) <= ALLOWED_FINDINGS, codes
    accepted = pd.read_parquet(tmp_path / "validate" / "accepted.parquet")
    if task.sample == "whole_image":
        rows = accepted[accepted.row_type == "image"]
        assert dict(Counter(rows.label)) == {c: n for c, n in done.per_class.items() if n}
        assert (rows.groupby("patient_id").label.nunique() == 1).all()  # one diagnosis per patient
        assert (rows.rel_path.str.split("/").str[0] == rows.label).all()  # the folder is the label
    else:
        assert report["n_accepted_boxes"] == done.n_boxes
        assert report["boxes_per_class"] == done.per_class


@pytest.mark.parametrize("preset", sorted(TINY))
def test_same_settings_give_the_same_bytes(preset: str, base: dict[str, Any], tmp_path: Path) -> None:
    doc = _doc(preset, base)
    first, second = tmp_path / "a", tmp_path / "b"
    _generate(preset, doc, first, n=4)
    _generate(preset, doc, second, n=4)
    assert _files(first) == _files(second) and len(_files(first)) >= 5
    _generate(preset, doc, first, n=4, seed=8)
    assert _files(first) != _files(second)


@pytest.mark.parametrize("preset", sorted(TINY))
def test_a_smaller_rerun_removes_its_own_old_files_only(preset: str, base: dict[str, Any], tmp_path: Path) -> None:
    doc = _doc(preset, base)
    data = tmp_path / "data"
    _generate(preset, doc, data, n=8)
    mine = data / "notes" / "keep.jpg"
    mine.parent.mkdir()
    mine.write_bytes(b"a user's file")
    _generate(preset, doc, data, n=3)
    with open(data / "metadata.csv", newline="", encoding="utf-8") as fh:
        listed = {r["filename"] for r in csv.DictReader(fh)}
    images = {p.name for p in data.rglob("*") if p.suffix in (".jpg", ".jpeg", ".dcm") and p != mine}
    assert len(listed) == 3 and images == listed and mine.read_bytes() == b"a user's file"


def test_ct_slices_are_real_dicom_in_hounsfield_units_and_nothing_identifying_leaks(
    base: dict[str, Any], tmp_path: Path
) -> None:
    import pydicom

    doc = _doc("ct_pneumonia", base)
    data = tmp_path / "data"
    _generate("ct_pneumonia", doc, data, n=6)
    with open(data / "metadata.csv", newline="", encoding="utf-8") as fh:
        patients = {r["filename"]: r["patient_id"] for r in csv.DictReader(fh)}
    series: dict[str, set[str]] = {}
    for path in sorted(data.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert (ds.Modality, ds.BitsStored, ds.PhotometricInterpretation) == ("CT", 12, "MONOCHROME2")
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
        assert list(ds.WindowCenter) == [-600, 40] and ds.pixel_array.max() <= 4095
        assert ds.PatientID == patients[path.name] and (ds.Rows, ds.Columns) == (64, 64)
        hu = ds.pixel_array.astype(float) + float(ds.RescaleIntercept)
        assert hu.min() < -900 and hu.max() > 300  # air around the body, bone in the spine
        series.setdefault(ds.PatientID, set()).add(ds.SeriesInstanceUID)
    assert all(len(uids) == 1 for uids in series.values())  # a patient's slices are one series
    ingest(section(doc, "ingest_data", IngestConfig), data, tmp_path / "ingest")
    manifest = pd.read_parquet(tmp_path / "ingest" / "manifest.parquet")
    assert set(manifest.loc[manifest.row_type == "image", "modality"]) == {"dicom"}
    assert "SYNTHETIC^" not in manifest.to_csv() + (tmp_path / "ingest" / "ingest_report.json").read_text()


def test_acupoint_boxes_are_small_points_inside_the_photo(base: dict[str, Any], tmp_path: Path) -> None:
    doc = load_preset("acupoint", base)
    settings = dataclasses.replace(synth_settings(doc), n_images=4)  # the preset's full 288x384 size
    done = generate(settings, tuple(doc["task"]["classes"]), tmp_path / "data", progress=False)
    assert done.n_boxes == 4 * 6
    for xml in sorted((tmp_path / "data" / "images").glob("*.xml")):
        ann = read_voc(xml)
        assert sorted(b.name for b in ann.boxes) == sorted(doc["task"]["classes"])
        for b in ann.boxes:
            assert 8 <= b.width <= 20 and b.width == b.height
            assert b.xmin >= 1 and b.xmax <= ann.width and b.ymin >= 1 and b.ymax <= ann.height


@pytest.mark.parametrize(
    ("generator", "classes", "priors", "message"),
    [
        ("chest_xray", ("normal", "tuberculosis"), None, "draws only"),
        ("ct", ("normal", "viral_pneumonia"), (1.0,), "class_priors has 1 values"),
        ("acupoint", ("laogong", "hegu"), None, "unique names from"),
        ("acupoint", ("laogong",), (1.0,), "synth.class_priors"),
        ("monkeypox", ("monkeypox", "other"), (0.0, 0.0), "not all zero"),
    ],
)
def test_impossible_settings_are_refused_before_writing(
    generator: str, classes: tuple[str, ...], priors: tuple[float, ...] | None, message: str, tmp_path: Path
) -> None:
    from lesionops.presets import SynthSettings

    settings = SynthSettings(generator=generator, n_images=2, image_width=64, image_height=64, class_priors=priors)
    with pytest.raises(ConfigError, match=message):
        generate(settings, classes, tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()


def test_cli_synth_task_uses_the_preset_generator_and_keeps_the_skin_default(tmp_path: Path) -> None:
    from lesionops.cli import app

    runner = CliRunner()
    params = str(REPO / "params.yaml")
    ct = runner.invoke(
        app,
        [
            "synth",
            "--task",
            "ct_pneumonia",
            "--out",
            str(tmp_path / "ct"),
            "--n-images",
            "3",
            "--width",
            "48",
            "--height",
            "48",
            "--params",
            params,
        ],
    )
    assert ct.exit_code == 0, ct.output
    assert "synth (ct): 3 images" in ct.output and len(list((tmp_path / "ct").rglob("*.dcm"))) == 3
    skin = runner.invoke(
        app,
        [
            "synth",
            "--out",
            str(tmp_path / "skin"),
            "--n-images",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--params",
            params,
        ],
    )
    assert skin.exit_code == 0, skin.output
    assert "synth (skin): 2 images" in skin.output and len(list((tmp_path / "skin" / "images").glob("*.xml"))) == 2
    refused = runner.invoke(
        app, ["synth", "--task", "monkeypox", "--defects", "--out", str(tmp_path / "m"), "--params", params]
    )
    assert refused.exit_code == 2 and "labelImg skin photos only" in " ".join(refused.output.split())
    unknown = runner.invoke(app, ["pipeline", "run", "--task", "mri", "--params", params])
    assert unknown.exit_code == 2 and "available: acupoint, chest_xray" in " ".join(unknown.output.split())
