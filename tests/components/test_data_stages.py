"""ingest → validate → crop on a tiny dataset with the breakage labelImg users really produce."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from components.common.hashing import sha256_file
from components.common.params import section
from components.common.task import load_task
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run as crop
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.conftest import tiny_params


@pytest.fixture()
def broken_dataset(tiny_dataset: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    images = sorted((data / "images").glob("*.jpg"))
    broken = {
        "truncated": images[0].name,
        "malformed": images[1].name,
        "unknown_label": images[2].name,
        "no_xml": images[3].name,
    }
    raw = images[0].read_bytes()
    images[0].write_bytes(raw[: len(raw) // 3])
    images[1].with_suffix(".xml").write_text("<annotation><filename>x.jpg</filename>")
    xml = images[2].with_suffix(".xml")
    xml.write_text(
        xml.read_text()
        .replace("<name>psoriasis</name>", "<name>acne</name>")
        .replace("<name>lichen_planus</name>", "<name>acne</name>")
    )
    images[3].with_suffix(".xml").unlink()
    return data, broken


def test_breakage_is_quarantined_and_the_rest_kept(broken_dataset: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    data, broken = broken_dataset
    doc = tiny_params(tmp_path)
    manifest = ingest(section(doc, "ingest_data", IngestConfig), data, tmp_path / "ingest")
    n_images = int((manifest.row_type == "image").sum())
    assert n_images == 80 and manifest.loc[manifest.row_type == "image", "sha256"].str.len().eq(64).all()
    report = validate(
        section(doc, "validate_annotations", ValidateConfig), load_task(doc), tmp_path / "ingest", tmp_path / "validate"
    )
    quarantined = {Path(p).name for p in report["quarantined"]}
    # an unknown label is a box-level error: its boxes are dropped and listed, the photo is not quarantined
    assert quarantined == set(broken.values()) - {broken["unknown_label"]}
    codes = {(Path(f["file"]).stem, f["code"]) for f in report["findings"] if f["severity"] == "error"}
    assert (Path(broken["truncated"]).stem, "IMAGE_CORRUPT") in codes
    assert (Path(broken["malformed"]).stem, "XML_MALFORMED") in codes
    assert (Path(broken["unknown_label"]).stem, "LABEL_UNKNOWN") in codes
    assert (Path(broken["no_xml"]).stem, "ANNOTATION_MISSING") in codes
    assert report["n_accepted_images"] == n_images - 3
    dropped = [d for d in report["dropped_boxes"] if Path(d["file"]).name == broken["unknown_label"]]
    assert dropped and {(d["code"], d["label"]) for d in dropped} == {("LABEL_UNKNOWN", "acne")}
    assert report["n_dropped_boxes"] == len(dropped) and report["n_images_not_for_detection"] == 1
    assert (tmp_path / "validate" / "validation_report.html").read_text().count("<tr>") > 4

    patches = crop(
        section(doc, "crop_patches", CropConfig), load_task(doc), tmp_path / "validate", data, tmp_path / "crop"
    )
    crops = pd.read_parquet(tmp_path / "crop" / "crops.parquet")
    assert len(crops) == report["n_accepted_boxes"]
    assert set(crops.patch_id) <= set(patches.base_patch_id) | set(crops.loc[crops.split == "train", "patch_id"])
    assert set(patches.split) == {"train", "val", "test"}
    assert (patches.groupby("patient_id").split.nunique() == 1).all()
    # Lineage: any patch leads back to the exact raw bytes and box it came from.
    row = patches.iloc[len(patches) // 2]
    assert sha256_file(data / row.rel_path) == row.sha256
    assert (tmp_path / "crop" / "patches" / row.patch_path).is_file()
    accepted = pd.read_parquet(tmp_path / "validate" / "accepted.parquet")
    box = accepted[(accepted.rel_path == row.rel_path) & (accepted.box_index == row.box_index)]
    assert float(box.xmin.iloc[0]) == row.xmin


def test_too_much_breakage_fails_but_keeps_the_report(tiny_dataset: Path, tmp_path: Path) -> None:
    from components.common.errors import DataError

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    for xml in sorted((data / "images").glob("*.xml"))[:40]:
        xml.unlink()
    doc = tiny_params(tmp_path)
    ingest(section(doc, "ingest_data", IngestConfig), data, tmp_path / "ingest")
    with pytest.raises(DataError, match="quarantined"):
        validate(
            section(doc, "validate_annotations", ValidateConfig),
            load_task(doc),
            tmp_path / "ingest",
            tmp_path / "validate",
        )
    assert (tmp_path / "validate" / "validation_report.json").is_file()
    assert not (tmp_path / "validate" / "accepted.parquet").exists()


def test_a_taxonomy_mismatch_fails_loudly_naming_the_labels(tiny_dataset: Path, tmp_path: Path) -> None:
    """Box-level errors drop boxes, not photos; when most boxes go, the stage still fails, and says why."""
    from components.common.errors import DataError

    doc = tiny_params(
        tmp_path, task={"classes": ["eczema", "psoriasis"]}, validate_annotations={"log_to_mlflow": False}
    )
    ingest(section(doc, "ingest_data", IngestConfig), tiny_dataset, tmp_path / "ingest")
    with pytest.raises(
        DataError,
        match=r"of the boxes of accepted images were dropped.*LABEL_UNKNOWN.*"
        r"'lichen_planus' \(\d+\).*task.aliases",
    ):
        validate(
            section(doc, "validate_annotations", ValidateConfig),
            load_task(doc),
            tmp_path / "ingest",
            tmp_path / "validate",
        )
    report = pd.read_json(tmp_path / "validate" / "validation_report.json", typ="series")
    assert report["n_quarantined"] == 0 and report["dropped_box_share"] > 0.2 and not report["passed"]
    assert not (tmp_path / "validate" / "accepted.parquet").exists()


@pytest.mark.parametrize("keep_partial", [False, True])
def test_a_zero_area_box_costs_one_box_not_the_photo(tiny_dataset: Path, tmp_path: Path, keep_partial: bool) -> None:
    """15 boxes, one of zero area: 14 patches from that photo, the bad box listed; the detector export
    leaves the photo out (its missing object would be learned as background) unless asked not to."""
    from dataclasses import replace

    from components.common.voc import VocBox, read_voc, write_voc

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    xml = sorted((data / "images").glob("*.xml"))[5]
    ann = read_voc(xml)
    label = ann.boxes[0].name
    grid = [
        VocBox(label, 1 + 30 * (i % 5), 1 + 30 * (i // 5), 25 + 30 * (i % 5), 25 + 30 * (i // 5)) for i in range(14)
    ]
    write_voc(xml, replace(ann, boxes=(*grid[:7], VocBox(label, 40, 100, 40, 110), *grid[7:])))
    doc = tiny_params(tmp_path, validate_annotations={"log_to_mlflow": False, "detection_keep_partial": keep_partial})
    ingest(section(doc, "ingest_data", IngestConfig), data, tmp_path / "ingest")
    report = validate(
        section(doc, "validate_annotations", ValidateConfig), load_task(doc), tmp_path / "ingest", tmp_path / "validate"
    )
    image = xml.relative_to(data).with_suffix(".jpg").as_posix()
    assert image in report["accepted"] and report["quarantined"] == []
    assert [(d["file"], d["box_index"], d["code"], d["label"]) for d in report["dropped_boxes"]] == [
        (image, 7, "BOX_ZERO_AREA", label)
    ]
    crop(section(doc, "crop_patches", CropConfig), load_task(doc), tmp_path / "validate", data, tmp_path / "crop")
    crops = pd.read_parquet(tmp_path / "crop" / "crops.parquet")
    assert sorted(crops.loc[crops.rel_path == image, "box_index"]) == [i for i in range(15) if i != 7]
    exported = set(pd.read_parquet(tmp_path / "crop" / "detection" / "detection.parquet").rel_path)
    left_out = pd.read_json(tmp_path / "crop" / "crop_report.json", typ="series")["detection"]["left_out_partial"]
    assert (image in exported) == keep_partial
    assert left_out == ({"n": 0, "files": []} if keep_partial else {"n": 1, "files": [image]})


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    from components.common.errors import DataError

    with pytest.raises(DataError, match="does not exist"):
        ingest(IngestConfig(), tmp_path / "nope", tmp_path / "out")
