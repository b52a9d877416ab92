"""The synthetic skin dataset: deterministic, labelImg-compatible, patient-consistent, validated."""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from components.common.errors import ConfigError
from components.common.voc import read_voc
from lesionops.synth.skin import (
    DEFAULT_CLASSES,
    DEFAULT_PRIORS,
    SynthConfig,
    SynthSummary,
    generate_skin_dataset,
)

STEM = re.compile(r"^(P\d{4})_([a-z]+)_z([123])_(\d+)$")


def _tiny(out: Path, **kw: object) -> SynthConfig:
    return SynthConfig(out_dir=out, **{"n_images": 6, "image_width": 128, "image_height": 96, **kw})


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def _metadata(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _labels_by_image(root: Path) -> dict[str, set[str]]:
    return {
        f.name: {b.name for b in read_voc(f.with_suffix(".xml")).boxes} for f in sorted((root / "images").glob("*.jpg"))
    }


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("synth") / "data"
    cfg = SynthConfig(out_dir=out, n_images=60, seed=11, image_width=128, image_height=96)
    return out, generate_skin_dataset(cfg, progress=False)


def test_same_config_gives_identical_bytes(tmp_path: Path) -> None:
    out = tmp_path / "data"
    cfg = _tiny(out)
    first_summary = generate_skin_dataset(cfg, progress=True)
    first = _snapshot(out)
    shutil.rmtree(out)
    assert generate_skin_dataset(cfg, progress=False) == first_summary
    assert _snapshot(out) == first
    assert len(first) == 2 * 6 + 1  # jpg + xml per image, plus metadata.csv


def test_bytes_do_not_depend_on_the_output_folder(tmp_path: Path) -> None:
    generate_skin_dataset(_tiny(tmp_path / "a"), progress=False)
    generate_skin_dataset(_tiny(tmp_path / "elsewhere" / "b"), progress=False)
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "elsewhere" / "b")


def test_real_path_is_written_when_asked(tmp_path: Path) -> None:
    cfg = dataclasses.replace(_tiny(tmp_path / "a"), annotator_dir=None)
    generate_skin_dataset(cfg, progress=False)
    jpg = sorted((tmp_path / "a" / "images").glob("*.jpg"))[0]
    assert read_voc(jpg.with_suffix(".xml")).path == str(jpg.resolve())


def test_other_seed_gives_other_images(tmp_path: Path) -> None:
    generate_skin_dataset(_tiny(tmp_path / "a", seed=1), progress=False)
    generate_skin_dataset(_tiny(tmp_path / "b", seed=2), progress=False)
    jpgs = lambda root: sorted(f.read_bytes() for f in (root / "images").glob("*.jpg"))  # noqa: E731
    assert jpgs(tmp_path / "a") != jpgs(tmp_path / "b")


def test_xml_round_trips_with_boxes_inside_the_image(medium: tuple[Path, SynthSummary]) -> None:
    out, summary = medium
    n_boxes = 0
    for jpg in sorted((out / "images").glob("*.jpg")):
        ann = read_voc(jpg.with_suffix(".xml"))
        assert (ann.folder, ann.filename) == ("images", jpg.name)
        assert ann.path == f"/home/dermatologist/ES-Raw/images/{jpg.name}"
        with Image.open(jpg) as im:
            assert (im.size, im.mode) == ((ann.width, ann.height), "RGB")
        assert (ann.width, ann.height, ann.depth) == (128, 96, 3)
        assert 1 <= len(ann.boxes) <= 3
        for b in ann.boxes:
            assert b.name in DEFAULT_CLASSES
            assert all(float(v).is_integer() for v in (b.xmin, b.ymin, b.xmax, b.ymax))
            assert 1 <= b.xmin < b.xmax <= ann.width and 1 <= b.ymin < b.ymax <= ann.height
        n_boxes += len(ann.boxes)
    assert n_boxes == summary.n_boxes == sum(summary.per_class_boxes.values())


def test_metadata_lists_every_image(medium: tuple[Path, SynthSummary]) -> None:
    out, summary = medium
    rows = _metadata(out)
    with open(out / "metadata.csv", encoding="utf-8") as fh:
        assert fh.readline().strip() == "filename,patient_id,body_site,label_source"
    assert sorted(r["filename"] for r in rows) == sorted(f.name for f in (out / "images").glob("*.jpg"))
    assert len(rows) == summary.n_images == 60
    for r in rows:
        match = STEM.match(Path(r["filename"]).stem)
        assert match is not None
        assert (match[1], match[2]) == (r["patient_id"], r["body_site"])
        assert r["label_source"] in ("pathology", "clinical")


def test_patients_have_several_images_and_one_diagnosis(medium: tuple[Path, SynthSummary]) -> None:
    out, summary = medium
    labels = _labels_by_image(out)
    per_patient: dict[str, set[str]] = defaultdict(set)
    images: Counter[str] = Counter()
    for r in _metadata(out):
        per_patient[r["patient_id"]] |= labels[r["filename"]]
        images[r["patient_id"]] += 1
    assert len(per_patient) == summary.n_patients > 5
    assert all(len(classes) == 1 for classes in per_patient.values())
    assert min(images.values()) >= 2


def test_class_priors_are_roughly_respected(medium: tuple[Path, SynthSummary]) -> None:
    out, _ = medium
    counts = Counter(next(iter(names)) for names in _labels_by_image(out).values())
    total = sum(DEFAULT_PRIORS.values())
    for name, prior in DEFAULT_PRIORS.items():
        assert abs(counts[name] / 60 - prior / total) <= 0.1, (name, counts)
    assert counts.most_common(1)[0][0] == "psoriasis"


def test_close_ups_show_larger_lesions(medium: tuple[Path, SynthSummary]) -> None:
    out, _ = medium
    areas: dict[str, list[float]] = defaultdict(list)
    for xml in (out / "images").glob("*.xml"):
        zoom = STEM.match(xml.stem)[3]  # type: ignore[index]
        areas[zoom] += [b.width * b.height for b in read_voc(xml).boxes]
    mean = {z: sum(a) / len(a) for z, a in areas.items()}
    assert mean["1"] < mean["3"]


def test_custom_classes_and_priors(tmp_path: Path) -> None:
    cfg = _tiny(
        tmp_path,
        n_images=8,
        classes=("eczema", "psoriasis"),
        class_priors=(0.0, 1.0),
        images_per_patient_min=1,
        images_per_patient_max=2,
    )
    summary = generate_skin_dataset(cfg, progress=False)
    assert summary.per_class_boxes["eczema"] == 0 and summary.per_class_boxes["psoriasis"] > 0
    assert set(summary.per_class_boxes) == {"eczema", "psoriasis"}


def test_box_margin_only_widens_boxes(tmp_path: Path) -> None:
    tight = generate_skin_dataset(_tiny(tmp_path / "t", box_margin=0.0), progress=False)
    wide = generate_skin_dataset(_tiny(tmp_path / "w", box_margin=0.2), progress=False)
    assert tight.n_boxes == wide.n_boxes
    grew = False
    for xml in sorted((tmp_path / "t" / "images").glob("*.xml")):
        pairs = zip(read_voc(xml).boxes, read_voc(tmp_path / "w" / "images" / xml.name).boxes, strict=True)
        for t, w in pairs:
            assert w.xmin <= t.xmin and w.ymin <= t.ymin and w.xmax >= t.xmax and w.ymax >= t.ymax
            grew |= w.width > t.width
    assert grew


def test_rerun_removes_stale_images_but_not_foreign_files(tmp_path: Path) -> None:
    generate_skin_dataset(_tiny(tmp_path, n_images=10), progress=False)
    (tmp_path / "images" / "notes.txt").write_text("keep me")
    generate_skin_dataset(_tiny(tmp_path, n_images=4), progress=False)
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 4
    assert len(list((tmp_path / "images").glob("*.xml"))) == 4
    assert (tmp_path / "images" / "notes.txt").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_images": 0}, "n_images"),
        ({"seed": -1}, "seed"),
        ({"image_width": 63}, "64x64"),
        ({"image_height": 10}, "64x64"),
        ({"classes": ()}, "classes"),
        ({"classes": ("eczema", "eczema")}, "unique"),
        ({"classes": ("eczema", "acne")}, "acne"),
        ({"class_priors": (0.5, 0.5)}, "5 classes"),
        ({"class_priors": (0.2, 0.2, -0.1, 0.3, 0.4)}, ">= 0"),
        ({"class_priors": (0.0,) * 5}, "not all zero"),
        ({"class_priors": (float("nan"), 1, 1, 1, 1)}, "finite"),
        ({"images_per_patient_min": 3, "images_per_patient_max": 2}, "images_per_patient"),
        ({"images_per_patient_min": 0}, "images_per_patient"),
        ({"box_margin": -0.1}, "box_margin"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
    ],
)
def test_bad_config_is_refused_before_writing(tmp_path: Path, change: dict, message: str) -> None:
    cfg = replace(_tiny(tmp_path / "never"), **change)
    with pytest.raises(ConfigError, match=re.escape(message)):
        generate_skin_dataset(cfg, progress=False)
    assert not (tmp_path / "never").exists()
