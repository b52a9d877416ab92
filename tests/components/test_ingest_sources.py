"""ingest_data on messy real-world datasets: every format and image kind, zip and S3 sources, reruns."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.common.errors import DataError
from components.common.voc import VocAnnotation, VocBox, to_xml
from components.ingest_data import rows as ingest_rows
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run
from tests.dicom_files import ramp, write_dicom

IMAGE_COLUMNS = {
    "rel_path",
    "source_uri",
    "sha256",
    "file_size",
    "patient_id",
    "patient_source",
    "body_site",
    "label_source",
    "camera",
    "exif_camera",
    "width",
    "height",
    "mode",
    "format",
    "bit_depth",
    "orientation",
    "modality",
    "image_error",
    "image_error_code",
    "annotation_path",
    "annotation_format",
    "annotation_error",
    "annotation_error_code",
    "xml_filename",
    "xml_path",
    "declared_width",
    "declared_height",
    "declared_depth",
    "classes_txt",
    "classes_txt_path",
    "image_label",
    "phash",
    "decode",
    "declared_split",
    "grey_pixels",
}
BOX_COLUMNS = {
    "rel_path",
    "sha256",
    "patient_id",
    "source_uri",
    "box_index",
    "label_raw",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "difficult",
    "truncated",
    "annotation_format",
}
BOOKKEEPING = {"row_type", "mtime_ns", "annotation_mtime_ns"}


def _photo(
    path: Path,
    size: tuple[int, int] = (40, 30),
    seed: int = 0,
    mode: str = "RGB",
    camera: tuple[str, str] | None = None,
) -> Path:
    """A noise photo; `camera` (make, model) is written as EXIF, as a phone or dermatoscope does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), np.uint8)
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = camera
    Image.fromarray(arr).convert(mode).save(path, exif=exif)
    return path


def _voc(image: Path, boxes: list[VocBox], xml: Path | None = None) -> Path:
    xml = xml or image.with_suffix(".xml")
    xml.parent.mkdir(parents=True, exist_ok=True)
    w, h = Image.open(image).size
    xml.write_text(
        to_xml(
            VocAnnotation(
                folder=image.parent.name,
                filename=image.name,
                path=str(image),
                width=w,
                height=h,
                depth=3,
                boxes=tuple(boxes),
            )
        )
    )
    return xml


@pytest.fixture()
def messy(tmp_path: Path) -> Path:
    """One dataset with every format, image kind and patient-id route the issue lists."""
    d = tmp_path / "data"
    a = _photo(d / "train" / "P001_a.jpg", camera=("Apple", "iPhone 12"))
    _voc(a, [VocBox("psoriasis", 2, 3, 20, 25)])
    voc2 = _photo(d / "voc" / "JPEGImages" / "P002_b.png", seed=1, camera=("Canon", "Canon EOS 80D"))
    _voc(
        voc2, [VocBox("eczema", 1, 1, 10, 10), VocBox("lupus", 5, 5, 30, 20)], d / "voc" / "Annotations" / "P002_b.xml"
    )
    (d / "yolo").mkdir()
    (d / "yolo" / "classes.txt").write_text("eczema\npsoriasis\n")
    _photo(d / "yolo" / "val" / "P003_c.png", seed=2)
    (d / "yolo" / "val" / "P003_c.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (d / "yolo" / "val" / "P003_gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # orphan
    _photo(d / "cml" / "P004_d.bmp", seed=3)
    (d / "cml" / "ann.json").write_text(
        '[{"image": "P004_d.bmp", "annotations": [{"label": "eczema", '
        '"coordinates": {"x": 20, "y": 15, "width": 10, "height": 6}}]},'
        ' {"image": "missing.jpg", "annotations": []}]'
    )
    (d / "kinds").mkdir()
    Image.fromarray(np.full((30, 40), 50000, np.uint16)).save(d / "kinds" / "deep.tif")
    _photo(d / "kinds" / "cmyk.tif", seed=4, mode="CMYK")
    _photo(d / "kinds" / "alpha.png", seed=5, mode="RGBA")
    _photo(d / "kinds" / "grey.png", seed=6, mode="L")
    write_dicom(
        d / "xray" / "chest.dcm", ramp(30, 40), "MONOCHROME1", Manufacturer="FUJIFILM", ManufacturerModelName="FCR"
    )
    _voc(_photo(d / "stray" / "x.jpg"), [VocBox("eczema", 1, 1, 5, 5)], d / "stray" / "orphan.xml")
    (d / "stray" / "x.jpg").unlink()
    (d / "broken.xml").write_text("<annotation>")
    (d / "bad.jpg").write_bytes(b"")
    (d / "metadata.csv").write_text(
        "filename,patient_id,body_site,label_source,camera\nP001_a.jpg,PX,arm,biopsy,DermLite DL4\n"
    )
    return d


def _cfg(tmp_path: Path, **kw: Any) -> IngestConfig:
    return IngestConfig(patient_pattern=r"^(?P<patient>P\d{3})_", cache_dir=str(tmp_path / "cache"), **kw)


def _images(manifest: pd.DataFrame) -> pd.DataFrame:
    return manifest[manifest.row_type == "image"].set_index("rel_path")


def test_every_format_kind_and_patient_route(messy: Path, tmp_path: Path) -> None:
    manifest = run(_cfg(tmp_path), messy, tmp_path / "out")
    assert set(manifest.columns) == IMAGE_COLUMNS | BOX_COLUMNS | BOOKKEEPING
    img = _images(manifest)
    assert img.loc[
        "train/P001_a.jpg", ["annotation_format", "patient_id", "patient_source", "body_site", "declared_split"]
    ].tolist() == ["voc", "PX", "metadata", "arm", "train"]
    assert img.loc["voc/JPEGImages/P002_b.png", "annotation_path"] == "voc/Annotations/P002_b.xml"
    # camera: metadata.csv's first (the dermatoscope on the phone), else the EXIF make and model
    assert img.loc["train/P001_a.jpg", ["camera", "exif_camera"]].tolist() == ["DermLite DL4", "Apple iPhone 12"]
    assert img.loc["voc/JPEGImages/P002_b.png", "camera"] == "Canon EOS 80D"
    assert img.loc["yolo/val/P003_c.png", "camera"] == ""
    assert img.loc["xray/chest.dcm", "camera"] == "FUJIFILM FCR"  # DICOM's manufacturer and model
    assert img.loc["voc/JPEGImages/P002_b.png", "patient_source"] == "pattern"
    yolo = img.loc["yolo/val/P003_c.png"]
    assert (yolo.annotation_format, yolo.classes_txt, yolo.classes_txt_path, yolo.declared_split) == (
        "yolo",
        "eczema,psoriasis",
        "yolo/classes.txt",
        "val",
    )
    assert img.loc["cml/P004_d.bmp", "annotation_format"] == "createml"
    assert img.loc["kinds/deep.tif", "bit_depth"] == 16 and img.loc["kinds/cmyk.tif", "mode"] == "CMYK"
    assert img.loc["kinds/grey.png", "patient_source"] == "unknown"
    assert img.loc["kinds/grey.png", "patient_id"] == "unknown:kinds/grey.png"
    assert img.loc["bad.jpg", "image_error_code"] == "IMAGE_CORRUPT" and img.loc["bad.jpg", "phash"] is None
    assert img.phash.dropna().str.fullmatch(r"[0-9a-f]{16}").all() and img.phash.notna().sum() == len(img) - 1
    boxes = manifest[manifest.row_type == "box"].set_index(["rel_path", "box_index"])
    assert boxes.loc[("yolo/val/P003_c.png", 0), ["label_raw", "xmin", "xmax"]].tolist() == [
        "psoriasis",
        10,
        30,
    ]  # labelImg: no offset
    assert boxes.loc[("cml/P004_d.bmp", 0), ["xmin", "ymin", "xmax", "ymax"]].tolist() == [15, 12, 25, 18]
    assert len(boxes.loc["voc/JPEGImages/P002_b.png"]) == 2
    orphans = manifest[manifest.row_type == "annotation"]
    assert set(orphans.rel_path) == {
        "yolo/val/P003_gone.txt",
        "cml/ann.json#missing.jpg",
        "stray/orphan.xml",
        "broken.xml",
    }
    assert orphans.source_uri.str.startswith("file:///").all()


def test_dicom_is_converted_and_identifiers_never_reach_the_manifest(messy: Path, tmp_path: Path) -> None:
    manifest = run(_cfg(tmp_path), messy, tmp_path / "out")
    row = _images(manifest).loc["xray/chest.dcm"]
    assert (row.modality, row.format, row["mode"], row.width, row.height, row.bit_depth) == (
        "dicom",
        "DICOM",
        "MONOCHROME1",
        40,
        30,
        16,
    )
    assert row.image_error is None and len(row.phash) == 16
    raw = (tmp_path / "out" / "manifest.parquet").read_bytes() + (tmp_path / "out" / "ingest_report.json").read_bytes()
    for secret in (b"Doe", b"Jane", b"MRN-998877", b"19700101"):
        assert secret not in raw
    assert b"Doe^Jane" in (messy / "xray" / "chest.dcm").read_bytes()  # the test file really has it


def test_image_too_large_has_its_own_code(messy: Path, tmp_path: Path) -> None:
    img = _images(run(_cfg(tmp_path, max_image_pixels=600), messy, tmp_path / "out"))
    assert img.loc["train/P001_a.jpg", "image_error_code"] == "IMAGE_TOO_LARGE"  # 1200 px


def test_annotation_error_codes(messy: Path, tmp_path: Path) -> None:
    (messy / "train" / "P001_a.xml").write_text('<!DOCTYPE a [<!ENTITY x "y">]><annotation>&x;</annotation>')
    (messy / "yolo" / "val" / "P003_c.txt").write_text("1 0.5 0.5\n")
    img = _images(run(_cfg(tmp_path), messy, tmp_path / "out"))
    assert img.loc["train/P001_a.jpg", "annotation_error_code"] == "XML_UNSAFE"
    assert img.loc["yolo/val/P003_c.png", "annotation_error_code"] == "ANNOTATION_MALFORMED"


def test_folder_per_class(tmp_path: Path) -> None:
    d = tmp_path / "xray"
    for i, (split, label) in enumerate([("train", "NORMAL"), ("train", "PNEUMONIA"), ("test", "NORMAL")]):
        _photo(d / split / label / f"im{i}.png", seed=i, mode="L")
    _photo(d / "train" / "loose.png")
    img = _images(run(_cfg(tmp_path, layout="folder_per_class"), d, tmp_path / "out"))
    assert img.loc["train/PNEUMONIA/im1.png", ["image_label", "annotation_format", "declared_split"]].tolist() == [
        "PNEUMONIA",
        "folder",
        "train",
    ]
    assert img.loc["train/loose.png", "annotation_error_code"] == "ANNOTATION_MALFORMED"


def test_zip_source_and_rerun_reuses_the_extraction(messy: Path, tmp_path: Path) -> None:
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(messy.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(messy).as_posix())
        zf.writestr("__MACOSX/train/._P001_a.jpg", b"resource fork")
    manifest = run(_cfg(tmp_path), str(archive), tmp_path / "out")
    img = _images(manifest)
    assert img.loc["train/P001_a.jpg", "source_uri"] == f"zip://{archive.resolve()}!/train/P001_a.jpg"
    assert "__MACOSX/train/._P001_a.jpg" not in img.index
    from components.common.io import read_json

    again = run(_cfg(tmp_path), str(archive), tmp_path / "out")
    report = read_json(tmp_path / "out" / "ingest_report.json")
    assert report["staging"]["extracted"] == 0 and report["images_read"] == 0
    pd.testing.assert_frame_equal(manifest, again)


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_malicious_zip_is_refused(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.jpg", b"x")
        zf.writestr(zipfile.ZipInfo(member), b"pwned")
    with pytest.raises(DataError, match="unsafe member"):
        run(_cfg(tmp_path), archive, tmp_path / "out")
    assert not list((tmp_path).rglob("evil.txt"))


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    from components.common.sources import ZipLimits

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jpg", b"\0" * 2_000_000)
    with pytest.raises(DataError, match="limit"):
        run(_cfg(tmp_path, zip=ZipLimits(max_total_bytes=1_000_000)), archive, tmp_path / "out")


@pytest.fixture()
def s3_server(s3_client: Any) -> str:
    """The shared moto server's URL (tests/conftest.py)."""
    return str(s3_client.meta.endpoint_url)


def test_s3_prefix_and_second_run_downloads_nothing(
    messy: Path, tmp_path: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from components.common.io import read_json

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)  # the standard variable boto3 reads itself
    client = boto3.client("s3")
    client.create_bucket(Bucket="clinic")
    for path in sorted(messy.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), "clinic", f"uploads/2024/{path.relative_to(messy).as_posix()}")
    client.put_object(Bucket="clinic", Key="elsewhere/z.jpg", Body=b"not in the prefix")
    cfg = _cfg(tmp_path)
    first = run(cfg, "s3://clinic/uploads/2024", tmp_path / "out")
    img = _images(first)
    assert img.loc["train/P001_a.jpg", "source_uri"] == "s3://clinic/uploads/2024/train/P001_a.jpg"
    assert len(img) == len(_images(run(_cfg(tmp_path), messy, tmp_path / "local")))
    n_objects = read_json(tmp_path / "out" / "ingest_report.json")["staging"]["downloaded"]
    assert n_objects == sum(1 for p in messy.rglob("*") if p.is_file())

    client.delete_object(Bucket="clinic", Key="uploads/2024/kinds/grey.png")
    second = run(cfg, "s3://clinic/uploads/2024/", tmp_path / "out")
    report = read_json(tmp_path / "out" / "ingest_report.json")
    assert report["staging"] == {"downloaded": 0, "skipped": n_objects - 1, "removed": 1}
    assert report["images_read"] == 0 and "kinds/grey.png" not in _images(second).index


def test_incremental_rerun_reads_only_what_changed(messy: Path, tmp_path: Path) -> None:
    from components.common.io import read_json

    first = run(_cfg(tmp_path), messy, tmp_path / "out")
    before = dict(ingest_rows.READS)
    again = run(_cfg(tmp_path), messy, tmp_path / "out")
    assert dict(ingest_rows.READS) == before  # nothing opened at all
    pd.testing.assert_frame_equal(first, again)
    report = read_json(tmp_path / "out" / "ingest_report.json")
    assert report["images_read"] == 0 and report["annotations_read"] == 0

    _photo(messy / "kinds" / "grey.png", seed=99, mode="L")  # new bytes
    xml = messy / "train" / "P001_a.xml"
    xml.write_text(xml.read_text().replace("psoriasis", "eczema"))
    os.utime(xml, ns=(xml.stat().st_atime_ns, xml.stat().st_mtime_ns + 10**9))
    (messy / "metadata.csv").write_text("filename,patient_id\nP001_a.jpg,PY\n")  # never cached
    third = run(_cfg(tmp_path), messy, tmp_path / "out")
    assert ingest_rows.READS["image"] - before["image"] == 1
    assert ingest_rows.READS["annotation"] - before["annotation"] == 1
    img1, img3 = _images(first), _images(third)
    assert img3.loc["kinds/grey.png", "sha256"] != img1.loc["kinds/grey.png", "sha256"]
    assert img3.loc["train/P001_a.jpg", "patient_id"] == "PY"
    boxes = third[(third.row_type == "box") & (third.rel_path == "train/P001_a.jpg")]
    assert boxes.label_raw.tolist() == ["eczema"]
    unchanged = img1.index.difference(["kinds/grey.png", "train/P001_a.jpg"])
    cols = ["sha256", "width", "phash", "annotation_path", "mtime_ns"]
    pd.testing.assert_frame_equal(img1.loc[unchanged, cols], img3.loc[unchanged, cols])


def test_cli_takes_a_uri(messy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import yaml

    from components.ingest_data.__main__ import main
    from tests.conftest import REPO

    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    doc["ingest_data"]["cache_dir"] = str(tmp_path / "cache")
    main(["--source", messy.resolve().as_uri(), "--out", str(tmp_path / "out"), "--params-json", json.dumps(doc)])
    assert (tmp_path / "out" / "manifest.parquet").is_file()
    shutil.rmtree(tmp_path / "out")


def test_a_manifest_from_before_the_camera_column_is_read_again(messy: Path, tmp_path: Path) -> None:
    """Images are reused by size and mtime; a row without a field the code now writes (exif_camera)
    would keep it empty forever, so such a manifest's images are read again, once."""
    from components.common.io import read_json

    first = run(_cfg(tmp_path), messy, tmp_path / "out")
    first.drop(columns=["exif_camera"]).to_parquet(tmp_path / "out" / "manifest.parquet")
    again = run(_cfg(tmp_path), messy, tmp_path / "out")
    assert read_json(tmp_path / "out" / "ingest_report.json")["images_reused"] == 0
    pd.testing.assert_frame_equal(first, again)
