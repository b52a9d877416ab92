from pathlib import Path

import pytest

from components.common.errors import DataError
from components.common.voc import VocAnnotation, VocBox, read_voc, to_xml, write_voc

LABELIMG_BYTES = """<annotation>
\t<folder>images</folder>
\t<filename>a.jpg</filename>
\t<path>/home/doc/images/a.jpg</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>100</width>
\t\t<height>80</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>psoriasis</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>1</xmin>
\t\t\t<ymin>10</ymin>
\t\t\t<xmax>50</xmax>
\t\t\t<ymax>60</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""


def _ann(*boxes: VocBox) -> VocAnnotation:
    return VocAnnotation("images", "a.jpg", "/home/doc/images/a.jpg", 100, 80, 3, boxes)


def test_writes_exactly_what_labelimg_writes() -> None:
    assert to_xml(_ann(VocBox("psoriasis", 1, 10, 50, 60))) == LABELIMG_BYTES


@pytest.mark.parametrize(
    ("box", "truncated"),
    [
        (VocBox("x", 10, 10, 50, 60), "0"),
        (VocBox("x", 10, 10, 100, 60), "1"),
        (VocBox("x", 10, 10, 50, 80), "1"),
    ],
)
def test_truncated_flag_follows_labelimg_rule(box: VocBox, truncated: str) -> None:
    assert f"<truncated>{truncated}</truncated>" in to_xml(_ann(box))


def test_round_trip(tmp_path: Path) -> None:
    ann = _ann(VocBox("eczema", 5, 6, 30, 40), VocBox("psoriasis", 40, 20, 90, 70, difficult=True))
    write_voc(tmp_path / "a.xml", ann)
    back = read_voc(tmp_path / "a.xml")
    assert [(b.name, b.xmin, b.ymax, b.difficult) for b in back.boxes] == [
        ("eczema", 5, 40, False),
        ("psoriasis", 40, 70, True),
    ]
    assert (back.width, back.height, back.depth, back.filename) == (100, 80, 3, "a.jpg")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<annotation><filename>a.jpg", "malformed XML"),
        ("<voc><filename>a.jpg</filename></voc>", "expected <annotation>"),
        ('<!DOCTYPE a [<!ENTITY x "boom">]><annotation><filename>&x;</filename></annotation>', "unsafe XML"),
        (
            "<annotation><filename>a.jpg</filename><object><name>a</name><bndbox><xmin>one</xmin>"
            "<ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>",
            "should be a number",
        ),
    ],
)
def test_bad_xml_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_voc(path)
    assert problem in str(err.value) and str(path) in str(err.value)
