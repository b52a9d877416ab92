"""crop_patches on generated images: odd pixel formats, EXIF, incremental re-runs, lineage."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.common.errors import DataError
from components.common.task import TaskConfig
from components.crop_patches.balance import BalanceConfig
from components.crop_patches.config import CropConfig
from components.crop_patches.core import CROPS, REPORT, SHEET, run
from components.crop_patches.detection import DetectionConfig
from components.crop_patches.split import SplitConfig

TASK = TaskConfig(name="t", classes=("a", "b"))
GPS_IFD = 0x8825


def _photo(path: Path, size: tuple[int, int], mode: str = "RGB", orientation: int = 1, seed: int = 0) -> None:
    """A photo with structure (so crops differ) and EXIF with an orientation and a GPS position."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = (rng.random((h // 8 + 1, w // 8 + 1, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    exif.get_ifd(GPS_IFD)[2] = (28.0, 11.0, 0.0)  # GPSLatitude: must never reach a patch
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        img.convert("L").save(path, exif=exif)
    elif mode == "I;16":
        arr = np.asarray(img.convert("L"), dtype=np.uint16) * 200
        Image.fromarray(arr).save(path)  # 16-bit PNG
    elif mode == "RGBA":
        rgba = img.convert("RGBA")
        rgba.putalpha(128)
        rgba.save(path)
    else:
        img.save(path, quality=95, exif=exif)


def _accepted(source: Path, out: Path, specs: list[dict[str, Any]]) -> Path:
    """An accepted.parquet as validate_annotations writes it: image rows then their box rows."""
    rows = []
    for spec in specs:
        path = source / spec["rel"]
        if not path.exists():
            _photo(
                path,
                spec.get("size", (400, 300)),
                spec.get("mode", "RGB"),
                spec.get("orientation", 1),
                spec.get("seed", 0),
            )
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        with Image.open(path) as img:
            w, h = img.size
        boxes = spec.get("boxes", [])
        rows.append(
            {
                "row_type": "image",
                "rel_path": spec["rel"],
                "sha256": sha,
                "width": float(w),
                "height": float(h),
                "orientation": float(spec.get("orientation", 1)),
                "patient_id": spec["patient"],
                "label": spec.get("label", boxes[0][4] if boxes else None),
                "camera": spec.get("camera", ""),
            }
        )
        for i, (x0, y0, x1, y1, label) in enumerate(boxes):
            rows.append(
                {
                    "row_type": "box",
                    "rel_path": spec["rel"],
                    "sha256": sha,
                    "patient_id": spec["patient"],
                    "box_index": float(i),
                    "label": label,
                    "xmin": float(x0),
                    "ymin": float(y0),
                    "xmax": float(x1),
                    "ymax": float(y1),
                }
            )
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(out / "accepted.parquet", index=False)
    return out


def _cfg(**kw: Any) -> CropConfig:
    base: dict[str, Any] = {
        "patch_size": 32,
        "workers": 1,
        "balance": BalanceConfig(target_per_class=None),
        "split": SplitConfig(train=0.34, val=0.33, test=0.33),
    }
    return CropConfig(**{**base, **kw})


def _specs(n: int, prefix: str = "img", offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "rel": f"images/{prefix}{i}.jpg",
            "patient": f"P{i + offset}",
            "seed": i + offset,
            "boxes": [(20, 30, 120, 110, "a" if i % 2 else "b"), (200, 150, 260, 220, "b")],
        }
        for i in range(n)
    ]


def test_patches_carry_no_metadata_and_lead_back_to_their_box(tmp_path: Path) -> None:
    acc = _accepted(tmp_path / "src", tmp_path / "val", _specs(6))
    patches = run(_cfg(), TASK, acc, tmp_path / "src", tmp_path / "out")
    assert len(patches) == 12
    for row in patches.itertuples():
        with Image.open(tmp_path / "out" / "patches" / row.patch_path) as img:
            assert img.size == (32, 32) and img.mode == "RGB"
            assert not img.getexif() and "exif" not in img.info and "icc_profile" not in img.info
    row = patches.iloc[3]
    raw = tmp_path / "src" / row.rel_path
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == row.sha256
    accepted = pd.read_parquet(acc / "accepted.parquet")
    box = accepted[(accepted.rel_path == row.rel_path) & (accepted.box_index == row.box_index)].iloc[0]
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == (row.xmin, row.ymin, row.xmax, row.ymax)
    assert (tmp_path / "out" / SHEET).is_file() and (tmp_path / "out" / CROPS).is_file()


@pytest.mark.parametrize("mode", ["L", "I;16", "RGBA"])
def test_grey_16bit_and_rgba_inputs_become_rgb_patches(tmp_path: Path, mode: str) -> None:
    ext = "jpg" if mode == "L" else "png"
    specs = [
        {
            "rel": f"images/x{i}.{ext}",
            "patient": f"P{i}",
            "mode": mode,
            "seed": i,
            "boxes": [(20, 30, 120, 110, "a"), (150, 100, 250, 200, "b")],
        }
        for i in range(4)
    ]
    patches = run(
        _cfg(), TASK, _accepted(tmp_path / "src", tmp_path / "val", specs), tmp_path / "src", tmp_path / "out"
    )
    arr = np.asarray(Image.open(tmp_path / "out" / "patches" / patches.patch_path.iloc[0]))
    assert arr.shape == (32, 32, 3) and arr.std() > 1  # real content, not a blank square


def test_exif_rotated_photo_is_cropped_in_the_frame_labelimg_showed_then_turned_upright(tmp_path: Path) -> None:
    """labelImg draws on the stored pixels; the patch is that crop, turned as the camera meant it."""
    src = tmp_path / "src"
    box = (40, 60, 140, 100)  # 100 × 40 in the stored frame
    spec = [{"rel": "images/r.jpg", "patient": "P1", "orientation": 6, "boxes": [(*box, "a")]}]
    acc = _accepted(src, tmp_path / "val", spec)
    stored = run(
        _cfg(shape="keep_aspect", context_margin=0.0, orientation="stored", image_format="png", reduced_decode=False),
        TASK,
        acc,
        src,
        tmp_path / "stored",
    )
    turned = run(
        _cfg(shape="keep_aspect", context_margin=0.0, image_format="png", reduced_decode=False),
        TASK,
        acc,
        src,
        tmp_path / "upright",
    )
    a = np.asarray(Image.open(tmp_path / "stored" / "patches" / stored.patch_path.iloc[0]), dtype=int)
    b = np.asarray(Image.open(tmp_path / "upright" / "patches" / turned.patch_path.iloc[0]), dtype=int)
    assert np.array_equal(np.rot90(a, k=-1), b)  # orientation 6 = rotate 90° clockwise to view
    with Image.open(src / "images/r.jpg") as raw:
        expected = raw.convert("RGB").crop((39, 59, 140, 100)).resize((32, 13), Image.Resampling.BILINEAR)
    assert np.abs(a[9:22, :, :] - np.asarray(expected, dtype=int)).mean() < 6  # letterboxed band


def test_rerun_crops_only_new_images_and_param_changes_recrop_exactly_what_they_affect(tmp_path: Path) -> None:
    src = tmp_path / "src"
    run(_cfg(), TASK, _accepted(src, tmp_path / "v1", _specs(6)), src, tmp_path / "out")
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "patches").rglob("*.jpg")}
    run(_cfg(), TASK, _accepted(src, tmp_path / "v2", _specs(6) + _specs(3, "new", 100)), src, tmp_path / "out")
    report = pd.read_json(tmp_path / "out" / REPORT, typ="series")
    assert (report["cropped_now"], report["reused"]) == (6, 12)
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())  # untouched
    run(
        _cfg(split=SplitConfig(salt="other", train=0.34, val=0.33, test=0.33)),
        TASK,
        tmp_path / "v2",
        src,
        tmp_path / "out",
    )
    assert pd.read_json(tmp_path / "out" / REPORT, typ="series")["cropped_now"] == 0  # splits: no pixels
    run(_cfg(patch_size=24), TASK, tmp_path / "v2", src, tmp_path / "out")
    report = pd.read_json(tmp_path / "out" / REPORT, typ="series")
    assert (report["cropped_now"], report["pruned"]) == (18, 18)  # every pixel changed; old files gone
    assert len(list((tmp_path / "out" / "patches").rglob("*.jpg"))) == 18


def test_a_broken_image_fails_the_stage_but_keeps_every_good_patch(tmp_path: Path) -> None:
    src = tmp_path / "src"
    acc = _accepted(src, tmp_path / "val", _specs(4))
    raw = (src / "images/img2.jpg").read_bytes()
    (src / "images/img2.jpg").write_bytes(raw[: len(raw) // 4])
    with pytest.raises(DataError, match="img2.jpg"):
        run(_cfg(), TASK, acc, src, tmp_path / "out")
    assert len(list((tmp_path / "out" / "patches").rglob("*.jpg"))) == 6
    report = pd.read_json(tmp_path / "out" / REPORT, typ="series")
    assert [Path(f["file"]).name for f in report["failed_images"]] == ["img2.jpg"]


def test_small_boxes_are_skipped_and_listed(tmp_path: Path) -> None:
    specs = [{"rel": "images/s.jpg", "patient": "P1", "boxes": [(10, 10, 12, 80, "a"), (50, 50, 150, 150, "b")]}]
    patches = run(
        _cfg(min_box_side=4),
        TASK,
        _accepted(tmp_path / "src", tmp_path / "val", specs),
        tmp_path / "src",
        tmp_path / "out",
    )
    assert list(patches.box_index) == [1]
    report = pd.read_json(tmp_path / "out" / REPORT, typ="series")
    assert report["skipped_small_boxes"] == [{"rel_path": "images/s.jpg", "box_index": 0, "side": 3.0}]


@pytest.mark.parametrize("policy", ["letterbox", "center_crop"])
def test_whole_image_tasks_share_the_patch_format(tmp_path: Path, policy: str) -> None:
    task = TaskConfig(name="cxr", classes=("normal", "pneumonia"), sample="whole_image")
    specs = [
        {
            "rel": f"images/c{i}.jpg",
            "patient": f"P{i}",
            "seed": i,
            "size": (300, 200),
            "label": ("normal", "pneumonia")[i % 2],
        }
        for i in range(6)
    ]
    patches = run(
        _cfg(whole_image=policy),
        task,
        _accepted(tmp_path / "src", tmp_path / "val", specs),
        tmp_path / "src",
        tmp_path / "out",
    )
    assert len(patches) == 6 and set(patches.box_index) == {-1}
    assert list(patches.window.iloc[0]) == [0, 0, 300, 200]
    arr = np.asarray(Image.open(tmp_path / "out" / "patches" / patches.patch_path.iloc[0]))
    bars = (arr[:4].max() < 10) and (arr[-4:].max() < 10)
    assert bars == (policy == "letterbox")
    assert not (tmp_path / "out" / "detection").exists()


def test_balancing_and_detection_export_in_the_stage(tmp_path: Path) -> None:
    src = tmp_path / "src"
    cfg = _cfg(balance=BalanceConfig(target_per_class=8), detection=DetectionConfig(copy_images=False))
    patches = run(cfg, TASK, _accepted(src, tmp_path / "val", _specs(12)), src, tmp_path / "out")
    train = patches[patches.split == "train"]
    report = pd.read_json(tmp_path / "out" / REPORT, typ="series")
    assert report["per_split_class_counts"]["train"] == train.label.value_counts().to_dict()
    copies = train[train.augment != "none"]
    for row in copies.itertuples():
        assert (tmp_path / "out" / "patches" / row.patch_path).is_file()
        assert row.base_patch_id in set(train.patch_id)
    for split in ("train", "val", "test"):
        assert (tmp_path / "out" / "detection" / f"annotations_{split}.json").is_file()
