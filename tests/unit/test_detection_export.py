import json
import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from components.common.errors import DataError
from components.crop_patches import detection
from components.crop_patches.detection import DetectionConfig, coco_bbox, export_detection, voc_box

CLASSES = ("lichen_planus", "psoriasis")
SPLIT_OF = {"P1": "train", "P2": "val", "P3": "test"}.__getitem__
# rel_path, patient, (w, h), boxes [(label, xmin, ymin, xmax, ymax)]
IMAGES = [
    ("b/img3.jpg", "P2", (40, 30), [("psoriasis", 5, 6, 20, 25)]),
    ("a/img1.jpg", "P1", (64, 48), [("psoriasis", 11, 21, 30, 40), ("lichen_planus", 1, 1, 64, 48)]),
    ("a/img2.jpg", "P1", (32, 32), []),
    ("c/img4.jpg", "P3", (50, 50), [("lichen_planus", 2, 3, 4, 5)]),
]


def accepted_table(images: list = IMAGES) -> pd.DataFrame:
    rows = []
    for rel, patient, (w, h), boxes in images:
        sha = f"sha-{rel}"
        rows.append(
            {
                "row_type": "image",
                "rel_path": rel,
                "sha256": sha,
                "width": float(w),
                "height": float(h),
                "patient_id": patient,
                "label": None,
                "orientation": 1.0,
            }
        )
        for i, (label, x0, y0, x1, y1) in enumerate(boxes):
            rows.append(
                {
                    "row_type": "box",
                    "rel_path": rel,
                    "sha256": sha,
                    "patient_id": patient,
                    "box_index": float(i),
                    "label": label,
                    "xmin": float(x0),
                    "ymin": float(y0),
                    "xmax": float(x1),
                    "ymax": float(y1),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    for i, (rel, _, size, _) in enumerate(IMAGES):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (40 * i, 100, 200)).save(root / rel, quality=90)
    return root


def run(source: Path, out: Path, cfg: DetectionConfig = DetectionConfig(), table: pd.DataFrame | None = None) -> dict:
    table = accepted_table() if table is None else table
    return export_detection(table, source, SPLIT_OF, CLASSES, cfg, out)


def load(out: Path, split: str) -> dict:
    return json.loads((out / f"annotations_{split}.json").read_text())


@pytest.mark.parametrize(
    ("box", "bbox"),
    [
        ((1, 1, 10, 10), [0, 0, 10, 10]),
        ((11, 21, 30, 40), [10, 20, 20, 20]),
        ((5, 5, 5, 5), [4, 4, 1, 1]),  # a single pixel is 1x1, not empty
        ((2.5, 3.0, 7.5, 9.0), [1.5, 2.0, 6.0, 7.0]),
    ],
)
def test_bbox_math_round_trips(box: tuple, bbox: list) -> None:
    assert coco_bbox(*box) == pytest.approx(bbox)
    assert voc_box(coco_bbox(*box)) == pytest.approx(box)
    assert coco_bbox(*voc_box(bbox)) == pytest.approx(bbox)


def test_images_follow_their_patient_split(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "det"
    summary = run(source, out)
    files = {s: [i["file_name"] for i in load(out, s)["images"]] for s in ("train", "val", "test")}
    assert files == {"train": ["a/img1.jpg", "a/img2.jpg"], "val": ["b/img3.jpg"], "test": ["c/img4.jpg"]}
    for split, doc in ((s, load(out, s)) for s in files):
        assert {SPLIT_OF(i["patient_id"]) for i in doc["images"]} == {split}
    table = pd.read_parquet(out / "detection.parquet")
    assert list(table.columns) == detection.BOX_COLUMNS
    assert (table["split"] == table["patient_id"].map(SPLIT_OF)).all()
    assert summary == {
        "train": {"images": 2, "boxes": 2, "per_class": {"lichen_planus": 1, "psoriasis": 1}},
        "val": {"images": 1, "boxes": 1, "per_class": {"lichen_planus": 0, "psoriasis": 1}},
        "test": {"images": 1, "boxes": 1, "per_class": {"lichen_planus": 1, "psoriasis": 0}},
        "negatives": 1,
        "left_out_partial": {"n": 0, "files": []},
    }
    json.dumps(summary)


def test_coco_structure_and_boxes(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "det"
    run(source, out)
    doc = load(out, "train")
    assert doc["info"] == {"description": "LesionOps detection export", "images_root": "images"}
    assert doc["categories"] == [{"id": 1, "name": "lichen_planus"}, {"id": 2, "name": "psoriasis"}]
    assert doc["images"][0] == {
        "id": 1,
        "file_name": "a/img1.jpg",
        "width": 64,
        "height": 48,
        "sha256": "sha-a/img1.jpg",
        "patient_id": "P1",
    }
    assert [a["id"] for a in doc["annotations"]] == [1, 2]
    first, second = doc["annotations"]
    assert first == {
        "id": 1,
        "image_id": 1,
        "category_id": 2,
        "bbox": [10.0, 20.0, 20.0, 20.0],
        "area": 400.0,
        "iscrowd": 0,
        "box_index": 0,
    }
    assert second["bbox"] == [0.0, 0.0, 64.0, 48.0]  # the whole image, exactly its size
    table = pd.read_parquet(out / "detection.parquet").sort_values(["rel_path", "box_index"])
    for ann, row in zip(doc["annotations"], table[table.split == "train"].itertuples()):
        assert voc_box(ann["bbox"]) == (row.xmin, row.ymin, row.xmax, row.ymax)
        assert CLASSES[ann["category_id"] - 1] == row.label


@pytest.mark.parametrize(
    ("include_empty", "train_files"),
    [
        (True, ["a/img1.jpg", "a/img2.jpg"]),
        (False, ["a/img1.jpg"]),
    ],
)
def test_empty_images_kept_or_dropped(source: Path, tmp_path: Path, include_empty: bool, train_files: list) -> None:
    out = tmp_path / "det"
    summary = run(source, out, DetectionConfig(include_empty=include_empty))
    assert [i["file_name"] for i in load(out, "train")["images"]] == train_files
    assert summary["train"]["images"] == len(train_files)
    assert (out / "images" / "a/img2.jpg").exists() == include_empty


def test_split_files_written_even_when_empty(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "det"
    table = accepted_table([IMAGES[1]])
    summary = run(source, out, table=table)
    assert load(out, "val")["images"] == [] and load(out, "test")["annotations"] == []
    assert summary["val"] == {"images": 0, "boxes": 0, "per_class": {"lichen_planus": 0, "psoriasis": 0}}


def test_copy_images_links_and_prunes_on_rerun(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "det"
    stale = out / "images" / "a/img1.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old bytes from a previous dataset version")
    (out / "images" / "gone" / "old.jpg").parent.mkdir(parents=True)
    (out / "images" / "gone" / "old.jpg").write_bytes(b"x")
    run(source, out)
    for rel, *_ in IMAGES:
        exported = out / "images" / rel
        assert exported.read_bytes() == (source / rel).read_bytes()
        assert os.path.samefile(exported, source / rel)  # hard link: same inode, no extra bytes
    assert not (out / "images" / "gone").exists()
    run(source, out, table=accepted_table([IMAGES[1]]))
    left = sorted(p.relative_to(out / "images").as_posix() for p in (out / "images").rglob("*") if p.is_file())
    assert left == ["a/img1.jpg"]
    assert not (out / "images" / "b").exists()


def test_copy_falls_back_when_linking_fails(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(detection.os, "link", refuse)
    out = tmp_path / "det"
    run(source, out)
    exported = out / "images" / "a/img1.jpg"
    assert exported.read_bytes() == (source / "a/img1.jpg").read_bytes()
    assert not os.path.samefile(exported, source / "a/img1.jpg")


def test_no_copy_points_at_source_and_drops_old_images(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "det"
    run(source, out)
    run(source, out, DetectionConfig(copy_images=False))
    assert not (out / "images").exists()
    assert load(out, "val")["info"]["images_root"] == str(source.resolve())


def test_missing_raw_file_is_named(source: Path, tmp_path: Path) -> None:
    (source / "b/img3.jpg").unlink()
    with pytest.raises(DataError, match="img3.jpg") as err:
        run(source, tmp_path / "det")
    assert err.value.path == str(source / "b/img3.jpg")


def test_unknown_label_refused(source: Path, tmp_path: Path) -> None:
    table = accepted_table([("a/img1.jpg", "P1", (64, 48), [("eczema", 1, 1, 5, 5)])])
    with pytest.raises(DataError, match="eczema"):
        run(source, tmp_path / "det", table=table)


def test_path_escaping_the_dataset_refused(source: Path, tmp_path: Path) -> None:
    table = accepted_table([("../outside.jpg", "P1", (8, 8), [])])
    with pytest.raises(DataError, match="outside.jpg"):
        run(source, tmp_path / "det", table=table)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_pycocotools_reads_the_export(source: Path, tmp_path: Path, split: str) -> None:
    coco_module = pytest.importorskip("pycocotools.coco")
    out = tmp_path / "det"
    summary = run(source, out)
    coco = coco_module.COCO(str(out / f"annotations_{split}.json"))
    assert len(coco.getImgIds()) == summary[split]["images"]
    assert len(coco.getAnnIds()) == summary[split]["boxes"]
    for i, name in enumerate(CLASSES, start=1):
        assert len(coco.getAnnIds(catIds=[i])) == summary[split]["per_class"][name]
    for img_id in coco.getImgIds():
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img_id])):
            assert ann["image_id"] == img_id
            assert ann["area"] == pytest.approx(ann["bbox"][2] * ann["bbox"][3])


def test_an_image_that_lost_a_box_is_left_out_and_listed(source: Path, tmp_path: Path) -> None:
    """Its missing object would be learned as background; a table without the column is all usable."""
    table = accepted_table()
    image = (table.row_type == "image") & (table.rel_path == "a/img1.jpg")
    table["detection_usable"] = None
    table.loc[table.row_type == "image", "detection_usable"] = True
    table.loc[image, "detection_usable"] = False
    out = tmp_path / "det"
    summary = run(source, out, table=table)
    assert summary["left_out_partial"] == {"n": 1, "files": ["a/img1.jpg"]}
    assert [i["file_name"] for i in load(out, "train")["images"]] == ["a/img2.jpg"]
    assert summary["negatives"] == 1 and summary["train"]["boxes"] == 0
    assert not (out / "images" / "a/img1.jpg").exists()
    assert "a/img1.jpg" not in set(pd.read_parquet(out / "detection.parquet").rel_path)


def test_images_follow_their_split_group_not_their_patient(source: Path, tmp_path: Path) -> None:
    """A near-duplicate of a train patient's photo, filed under a test patient, goes with its group."""
    table = accepted_table()
    table["split_group"] = table["patient_id"]
    table.loc[table.rel_path == "c/img4.jpg", "split_group"] = "P1"
    out = tmp_path / "det"
    run(source, out, table=table)
    assert "c/img4.jpg" in [i["file_name"] for i in load(out, "train")["images"]]
    assert load(out, "test")["images"] == []
    exported = pd.read_parquet(out / "detection.parquet")
    assert set(exported.loc[exported.rel_path == "c/img4.jpg", "split_group"]) == {"P1"}
