"""`ingest_data.decode`: header-only reads the same header facts as a full decode, skips (and says it
skips) the pixel checks, and a change of mode is never served from the incremental cache."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.common.errors import ConfigError, DataError
from components.common.images import probe
from components.common.io import records
from components.common.task import TaskConfig
from components.common.voc import VocAnnotation, VocBox, write_voc
from components.ingest_data import rows as ingest_rows
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from components.validate_annotations.dataset_checks import check_dataset
from tests.conftest import REPO

TASK = TaskConfig(name="t", classes=("eczema", "psoriasis"))
HEADER_FACTS = ["width", "height", "mode", "format", "bit_depth", "orientation", "sha256", "file_size"]


def _save(
    path: Path, seed: int, size: tuple[int, int] = (96, 72), mode: str = "RGB", orientation: int | None = None
) -> Path:
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(150, 40, (size[1] // 8, size[0] // 8, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR).convert(mode)
    if orientation is not None:
        exif = img.getexif()
        exif[0x0112] = orientation
        img.save(path, quality=90, exif=exif)
    else:
        img.save(path)
    w, h = img.size
    write_voc(
        path.with_suffix(".xml"),
        VocAnnotation(
            folder=path.parent.name,
            filename=path.name,
            path=str(path),
            width=w,
            height=h,
            depth=3,
            boxes=(VocBox("eczema", 5, 5, 40, 40), VocBox("psoriasis", 30, 20, 80, 60)),
        ),
    )
    return path


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """A few distinct kinds (EXIF-rotated JPEG, PNG, grey PNG, TIFF) plus one truncated JPEG."""
    d = tmp_path / "data"
    d.mkdir()
    for i in range(4):
        _save(d / f"plain_{i}.jpg", seed=i)
    _save(d / "rotated.jpg", seed=10, orientation=6)
    _save(d / "lossless.png", seed=11)
    _save(d / "grey.png", seed=12, mode="L")
    _save(d / "scan.tif", seed=13)
    whole = _save(d / "truncated.jpg", seed=14, size=(320, 240)).read_bytes()
    (d / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return d


def _cfg(tmp_path: Path, decode: str) -> IngestConfig:
    return IngestConfig(decode=decode, cache_dir=str(tmp_path / "cache"))


def _images(manifest: pd.DataFrame) -> pd.DataFrame:
    return manifest[manifest.row_type == "image"].set_index("rel_path").sort_index()


def test_header_mode_reads_the_same_header_facts_without_pixels(photos: Path, tmp_path: Path) -> None:
    full = _images(run(_cfg(tmp_path, "full"), photos, tmp_path / "full"))
    header = _images(run(_cfg(tmp_path, "header"), photos, tmp_path / "header"))
    healthy = full.index.drop("truncated.jpg")  # full mode zeroes the size of a file it cannot decode
    pd.testing.assert_frame_equal(full.loc[healthy, HEADER_FACTS], header.loc[healthy, HEADER_FACTS])
    assert (full.sha256 == header.sha256).all()
    assert full.loc["rotated.jpg", "orientation"] == 6 and full.loc["grey.png", "mode"] == "L"
    assert header.phash.isna().all() and (header.decode == "header").all()
    assert full.drop(index="truncated.jpg").phash.notna().all() and (full.decode == "full").all()
    # Only a decode finds the truncated body; header-only takes the file as healthy.
    assert full.loc["truncated.jpg", "image_error_code"] == "IMAGE_CORRUPT"
    assert header.image_error_code.isna().all()
    assert (tmp_path / "header" / "ingest_report.json").read_text().count('"decode": "header"') == 1


def test_probe_modes(photos: Path) -> None:
    bad = photos / "truncated.jpg"
    with pytest.raises(DataError) as caught:
        probe(bad)  # default stays the full check
    assert caught.value.code == "IMAGE_CORRUPT"
    assert probe(bad, with_phash=True, decode="header").phash is None
    with bad.open("rb") as fh:  # an open handle works too (ingest hashes and probes one handle)
        assert probe(fh, decode="header").width == 320
    with pytest.raises(ValueError, match="decode"):
        probe(bad, decode="pixels")
    with pytest.raises(ConfigError, match="ingest_data.decode"):
        IngestConfig(decode="fast")


def test_header_mode_guard_against_bombs_still_holds(photos: Path) -> None:
    with pytest.raises(DataError) as caught:
        probe(photos / "scan.tif", max_pixels=100, decode="header")
    assert caught.value.code == "IMAGE_TOO_LARGE"


def test_validation_says_when_pixels_were_not_checked(photos: Path, tmp_path: Path) -> None:
    vcfg = ValidateConfig(max_quarantine_fraction=1.0, min_boxes_per_class=0, log_to_mlflow=False)
    run(_cfg(tmp_path, "header"), photos, tmp_path / "header")
    report = validate(vcfg, TASK, tmp_path / "header", tmp_path / "vh")
    skipped = [f for f in report["findings"] if f["code"] == "DECODE_SKIPPED"]
    assert len(skipped) == 1 and skipped[0]["severity"] == "info" and skipped[0]["input_file"] is None
    assert "truncated/corrupt pixel data and near-duplicates are not checked" in skipped[0]["message"]
    assert "truncated.jpg" in report["accepted"]  # the honest cost of header mode
    run(_cfg(tmp_path, "full"), photos, tmp_path / "full")
    full = pd.read_parquet(tmp_path / "full" / "manifest.parquet")
    found = check_dataset(records(full[full.row_type == "image"]), [], vcfg)
    assert "DECODE_SKIPPED" not in {f.code for f in found}


def test_changing_the_mode_rereads_every_image(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(_cfg(tmp_path, "header"), photos, out)
    before = ingest_rows.READS["image"]
    run(_cfg(tmp_path, "header"), photos, out)
    assert ingest_rows.READS["image"] == before  # same mode: all reused
    assert _cfg(tmp_path, "header").rows_hash() != _cfg(tmp_path, "full").rows_hash()
    manifest = run(dataclasses.replace(_cfg(tmp_path, "header"), decode="full"), photos, out)
    n = int((manifest.row_type == "image").sum())
    assert ingest_rows.READS["image"] - before == n
    assert _images(manifest).drop(index="truncated.jpg").phash.notna().all()


@pytest.mark.slow
def test_validate_benchmark_quick_run() -> None:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "benchmarks/validate.py", "--n-images", "300", "--width", "640", "--height", "480"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio header vs full, timed work" in done.stdout
    assert time.perf_counter() - start < 120


@pytest.mark.parametrize(
    ("size", "expected"),
    [((4000, 3000), (500, 375)), ((378, 504), (189, 252)), ((200, 120), (200, 120)), ((1, 1), (1, 1))],
)
def test_draft_decodes_keep_enough_pixels_for_a_stable_perceptual_hash(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    from components.common.images import draft_size

    assert draft_size(*size) == expected


def test_probe_tells_grey_pixels_from_colour(tmp_path: Path) -> None:
    """labelImg's `<depth>` follows the pixels (Qt: a grey-only RGB image is grey), so ingest records them."""
    grey_rgb = Image.fromarray(np.repeat(np.linspace(0, 255, 64 * 48, dtype=np.uint8).reshape(48, 64, 1), 3, 2))
    cases = {
        "grey_rgb.png": grey_rgb,
        "grey_rgb.jpg": grey_rgb,
        "l.png": grey_rgb.convert("L"),
        "palette.png": grey_rgb.convert("L").convert("P"),
        "colour.jpg": Image.new("RGB", (64, 48), (200, 40, 40)),
    }
    for name, img in cases.items():
        img.save(tmp_path / name)
    found = {name: probe(tmp_path / name, with_phash=True).grey for name in cases}
    assert found == {
        "grey_rgb.png": True,
        "grey_rgb.jpg": True,
        "l.png": True,
        "palette.png": True,
        "colour.jpg": False,
    }
    assert probe(tmp_path / "colour.jpg", with_phash=True, decode="header").grey is None
