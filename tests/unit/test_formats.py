"""Annotation readers (VOC, YOLO, CreateML, folder-per-class) and image probing across modes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from components.common.errors import DataError
from components.common.formats import (
    find_classes_file,
    load_createml,
    read_createml_entry,
    read_folder_label,
    read_voc_file,
    read_yolo_file,
)
from components.common.images import load_rgb, probe


def test_voc_unsafe_and_malformed_have_distinct_codes(tmp_path: Path) -> None:
    unsafe = tmp_path / "u.xml"
    unsafe.write_text('<!DOCTYPE a [<!ENTITY x "boom">]><annotation><filename>&x;</filename></annotation>')
    dtd_only = tmp_path / "d.xml"
    dtd_only.write_text('<!DOCTYPE annotation SYSTEM "http://x/a.dtd"><annotation/>')
    broken = tmp_path / "m.xml"
    broken.write_text("<annotation><filename>x.jpg</filename>")
    wrong_root = tmp_path / "r.xml"
    wrong_root.write_text("<svg/>")
    codes = {}
    for path in (unsafe, dtd_only, broken, wrong_root):
        with pytest.raises(DataError) as err:
            read_voc_file(path)
        codes[path.stem] = err.value.code
    assert codes == {"u": "XML_UNSAFE", "d": "XML_UNSAFE", "m": "XML_MALFORMED", "r": "XML_MALFORMED"}


def test_voc_keeps_declared_size_filename_and_path(tmp_path: Path) -> None:
    xml = tmp_path / "a.xml"
    xml.write_text(
        "<annotation><folder>f</folder><filename>a.jpg</filename><path>/home/x/a.jpg</path>"
        "<size><width>100</width><height>50</height><depth>3</depth></size>"
        "<object><name>psoriasis</name><difficult>1</difficult><bndbox><xmin>2</xmin><ymin>3</ymin>"
        "<xmax>40</xmax><ymax>30</ymax></bndbox></object></annotation>"
    )
    ann = read_voc_file(xml)
    assert (ann.format, ann.declared_width, ann.declared_height, ann.declared_depth) == ("voc", 100, 50, 3)
    assert (ann.xml_filename, ann.xml_path) == ("a.jpg", "/home/x/a.jpg")
    assert ann.boxes[0].name == "psoriasis" and ann.boxes[0].difficult and ann.boxes[0].xmax == 40


def test_yolo_normalised_to_pixels_with_classes_in_parent(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("eczema\npsoriasis\n")
    (tmp_path / "batch").mkdir()
    txt = tmp_path / "batch" / "a.txt"
    txt.write_text("1 0.5 0.5 1.0 1.0\n0 0.25 0.5 0.1 0.2\n\n")
    assert find_classes_file(txt, tmp_path) == tmp_path / "classes.txt"
    ann = read_yolo_file(txt, (200, 100), tmp_path)
    whole, small = ann.boxes
    assert (whole.name, whole.xmin, whole.ymin, whole.xmax, whole.ymax) == ("psoriasis", 0, 0, 200, 100)
    assert small.name == "eczema"
    assert (small.xmin, small.xmax, small.ymin, small.ymax) == (40, 60, 40, 60)
    assert ann.classes == ("eczema", "psoriasis") and ann.classes_path == str(tmp_path / "classes.txt")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("0 0.5 0.5 0.2\n", "expected 'class cx cy w h'"),
        ("0 0.5 x 0.2 0.2\n", "not numbers"),
        ("7 0.5 0.5 0.2 0.2\n", "class index 7"),
        ("0 nan 0.5 0.2 0.2\n", "non-finite"),
    ],
)
def test_yolo_malformed_lines(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "classes.txt").write_text("a\nb\n")
    txt = tmp_path / "x.txt"
    txt.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        read_yolo_file(txt, (10, 10), tmp_path)
    assert err.value.code == "ANNOTATION_MALFORMED"


def test_yolo_without_classes_file(tmp_path: Path) -> None:
    txt = tmp_path / "x.txt"
    txt.write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match="classes.txt") as err:
        read_yolo_file(txt, (10, 10), tmp_path)
    assert err.value.code == "ANNOTATION_MALFORMED"


def test_createml_centre_coordinates(tmp_path: Path) -> None:
    js = tmp_path / "ann.json"
    js.write_text(
        json.dumps(
            [
                {
                    "image": "a.jpg",
                    "annotations": [{"label": "lupus", "coordinates": {"x": 50, "y": 40, "width": 20, "height": 10}}],
                }
            ]
        )
    )
    entries = load_createml(js)
    assert entries is not None
    box = read_createml_entry(js, entries["a.jpg"]).boxes[0]
    assert (box.name, box.xmin, box.ymin, box.xmax, box.ymax) == ("lupus", 40, 35, 60, 45)
    bad = {"image": "b.jpg", "annotations": [{"label": "x", "coordinates": {"x": 1}}]}
    with pytest.raises(DataError, match="b.jpg") as err:
        read_createml_entry(js, bad)
    assert err.value.code == "ANNOTATION_MALFORMED"
    other = tmp_path / "config.json"
    other.write_text('{"not": "createml"}')
    assert load_createml(other) is None


def test_folder_label() -> None:
    assert read_folder_label("train/PNEUMONIA/p1.png").image_label == "PNEUMONIA"
    for rel in ("p1.png", "train/p1.png"):
        with pytest.raises(DataError, match="class folder"):
            read_folder_label(rel)


def _save(img: Image.Image, path: Path, **kw: object) -> Path:
    img.save(path, **kw)
    return path


@pytest.mark.parametrize(
    ("name", "make", "mode", "bits"),
    [
        ("grey.png", lambda: Image.fromarray(np.full((6, 9), 90, np.uint8)), "L", 8),
        ("deep.png", lambda: Image.fromarray(np.full((6, 9), 40000, np.uint16)), "I;16", 16),
        ("deep.tif", lambda: Image.fromarray(np.full((6, 9), 40000, np.uint16)), "I;16", 16),
        ("alpha.png", lambda: Image.new("RGBA", (9, 6), (10, 20, 30, 128)), "RGBA", 8),
        ("cmyk.tif", lambda: Image.new("CMYK", (9, 6), (0, 255, 255, 0)), "CMYK", 8),
        ("plain.bmp", lambda: Image.new("RGB", (9, 6), (200, 10, 10)), "RGB", 8),
    ],
)
def test_probe_modes_and_rgb8(tmp_path: Path, name: str, make: Callable[[], Image.Image], mode: str, bits: int) -> None:
    path = _save(make(), tmp_path / name)
    info = probe(path, with_phash=True)
    assert (info.width, info.height, info.mode, info.bit_depth) == (9, 6, mode, bits)
    assert info.phash is not None and len(info.phash) == 16
    rgb = load_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (9, 6)


def test_probe_error_codes(tmp_path: Path) -> None:
    big = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    with pytest.raises(DataError) as err:
        probe(big, max_pixels=1000)  # 10x the limit: Pillow's error
    assert err.value.code == "IMAGE_TOO_LARGE"
    with pytest.raises(DataError) as err:
        probe(big, max_pixels=6000)  # between 1x and 2x: Pillow only warns; we refuse
    assert err.value.code == "IMAGE_TOO_LARGE"
    assert probe(big).width == 100  # the global limit is restored afterwards
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    jpg = _save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), tmp_path / "t.jpg")
    truncated = tmp_path / "trunc.jpg"
    truncated.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 3])
    for path in (empty, truncated):
        with pytest.raises(DataError) as err:
            probe(path)
        assert err.value.code == "IMAGE_CORRUPT"


def test_phash_survives_reencoding_but_separates_different_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = Image.fromarray(np.kron(rng.integers(0, 255, (8, 8), np.uint8), np.ones((16, 16), np.uint8)))
    a = probe(_save(base, tmp_path / "a.png"), with_phash=True).phash
    b = probe(_save(base.resize((100, 100)), tmp_path / "b.jpg", quality=70), with_phash=True).phash
    other = Image.fromarray(np.kron(rng.integers(0, 255, (8, 8), np.uint8), np.ones((16, 16), np.uint8)))
    c = probe(_save(other, tmp_path / "c.png"), with_phash=True).phash
    assert a and b and c
    distance = lambda x, y: bin(int(x, 16) ^ int(y, 16)).count("1")  # noqa: E731
    assert distance(a, b) <= 8 < distance(a, c)


def _labelimg_yolo_line(box: tuple[int, int, int, int], size: tuple[int, int], index: int) -> str:
    """labelImg's YOLOWriter.bnd_box_to_yolo_line + its "%d %.6f %.6f %.6f %.6f" format."""
    (xmin, ymin, xmax, ymax), (w, h) = box, size
    values = (index, (xmin + xmax) / 2 / w, (ymin + ymax) / 2 / h, (xmax - xmin) / w, (ymax - ymin) / h)
    return "%d %.6f %.6f %.6f %.6f" % values  # noqa: UP031 (labelImg's own format string)


def _labelimg_createml(box: tuple[int, int, int, int], label: str) -> dict[str, Any]:
    """labelImg's CreateMLWriter.calculate_coordinates: centre and size in pixels."""
    xmin, ymin, xmax, ymax = box
    width, height = xmax - xmin, ymax - ymin
    return {
        "label": label,
        "coordinates": {"x": xmin + width / 2, "y": ymin + height / 2, "width": width, "height": height},
    }


@pytest.mark.parametrize(
    ("box", "size"),
    [
        ((10, 20, 30, 40), (640, 480)),
        ((1, 1, 640, 480), (640, 480)),
        ((333, 17, 334, 19), (1000, 750)),
        ((7, 9, 4031, 3023), (4032, 3024)),
        ((13, 21, 208, 199), (220, 220)),
        ((1, 2, 3, 5), (7, 11)),
    ],
)
def test_yolo_and_createml_twins_of_a_voc_box_read_back_exactly(
    tmp_path: Path, box: tuple[int, int, int, int], size: tuple[int, int]
) -> None:
    (tmp_path / "classes.txt").write_text("Dead Cell\nLiving Cell\n")
    txt = tmp_path / "a.txt"
    txt.write_text(_labelimg_yolo_line(box, size, 1) + "\n")
    yolo = read_yolo_file(txt, size, tmp_path).boxes[0]
    assert (yolo.name, yolo.xmin, yolo.ymin, yolo.xmax, yolo.ymax) == ("Living Cell", *box)
    js = tmp_path / "ann.json"
    js.write_text(
        json.dumps([{"image": "a.jpg", "verified": False, "annotations": [_labelimg_createml(box, "Living Cell")]}])
    )
    entries = load_createml(js)
    assert entries is not None
    created = read_createml_entry(js, entries["a.jpg"]).boxes[0]
    assert (created.name, created.xmin, created.ymin, created.xmax, created.ymax) == ("Living Cell", *box)


@pytest.mark.parametrize(
    "make, model, want",
    [
        ("Canon", "Canon EOS 80D", "Canon EOS 80D"),  # the model already names the make
        ("Apple", "iPhone 12", "Apple iPhone 12"),
        ("  NIKON CORPORATION\x00", "NIKON D750 ", "NIKON D750"),  # padded, NUL-terminated EXIF strings
        (None, "DL4", "DL4"),
        (None, None, ""),
    ],
)
def test_camera_name(make: object, model: object, want: str) -> None:
    from components.common.images import camera_name

    assert camera_name(make, model) == want


def test_probe_reads_the_camera_from_exif(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 12"
    Image.new("RGB", (20, 10)).save(tmp_path / "a.jpg", exif=exif)
    Image.new("RGB", (20, 10)).save(tmp_path / "b.jpg")
    assert probe(tmp_path / "a.jpg", decode="header").camera == "Apple iPhone 12"
    assert probe(tmp_path / "b.jpg").camera == ""
