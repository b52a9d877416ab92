"""Feedback merge into the training data: idempotent, never overwrites, every image listed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from components.common.errors import ConfigError, DataError
from lesionops.retrain import feedback_pairs, merge_feedback
from pipelines.schedule import RetrainConfig, parse_interval


def _pair(folder: Path, stem: str, payload: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.jpg").write_bytes(payload)
    (folder / f"{stem}.xml").write_text(f"<annotation><filename>{stem}.jpg</filename></annotation>")


def _data(tmp: Path) -> Path:
    data = tmp / "data"
    data.mkdir()
    (data / "metadata.csv").write_text("filename,patient_id,body_site,label_source\nP1_a.jpg,P1,leg,clinical\n")
    return data


def test_merge_links_pairs_lists_them_and_is_idempotent(tmp_path: Path) -> None:
    data, feedback = _data(tmp_path), tmp_path / "feedback"
    _pair(feedback, "fb1", b"one")
    _pair(feedback / "2026-11", "fb2", b"two")
    cfg = RetrainConfig(data=str(data))
    first = merge_feedback(feedback, cfg)
    assert (first.added, first.present) == (2, 0)
    assert (data / "feedback" / "fb1.jpg").read_bytes() == b"one"
    assert (data / "feedback" / "2026-11" / "fb2.xml").is_file()
    rows = list(csv.DictReader((data / "metadata.csv").open()))
    assert rows[0]["patient_id"] == "P1"  # the existing rows are kept as they were
    merged = {r["filename"]: r for r in rows[1:]}
    assert set(merged) == {"feedback/fb1.jpg", "feedback/2026-11/fb2.jpg"}
    assert all(
        r["patient_id"].startswith("feedback:") and r["label_source"] == "expert_review" for r in merged.values()
    )
    assert len({r["patient_id"] for r in merged.values()}) == 2  # one group per image: no split leak

    again = merge_feedback(feedback, cfg)
    assert (again.added, again.present) == (0, 2)
    assert len(list(csv.DictReader((data / "metadata.csv").open()))) == 3


def test_merge_refuses_to_overwrite_a_different_file(tmp_path: Path) -> None:
    data, feedback = _data(tmp_path), tmp_path / "feedback"
    _pair(feedback, "fb1", b"new bytes")
    (data / "feedback").mkdir()
    (data / "feedback" / "fb1.jpg").write_bytes(b"older, different bytes")
    with pytest.raises(DataError, match="refusing to overwrite"):
        merge_feedback(feedback, RetrainConfig(data=str(data)))
    assert (data / "feedback" / "fb1.jpg").read_bytes() == b"older, different bytes"


def test_image_without_its_xml_is_named(tmp_path: Path) -> None:
    (tmp_path / "feedback").mkdir()
    (tmp_path / "feedback" / "lonely.png").write_bytes(b"x")
    with pytest.raises(DataError, match="lonely.png"):
        feedback_pairs(tmp_path / "feedback")
    assert feedback_pairs(tmp_path / "absent") == []


def test_missing_data_folder_and_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        merge_feedback(tmp_path, RetrainConfig(data=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="kubeflow_host"):
        RetrainConfig(target="kubeflow")
    with pytest.raises(ConfigError, match="merge_folder"):
        RetrainConfig(merge_folder="../outside")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("1.5h", 5400), ("1d", 86400)])
def test_parse_interval(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "0h", "-1h", "1w", "h"])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--every"):
        parse_interval(text)


def test_voc_devkit_layout_is_paired_and_kept(tmp_path: Path) -> None:
    """What the review page writes: images/<id>.jpg + Annotations/<id>.xml (ingest_data's pairing)."""
    data, feedback = _data(tmp_path), tmp_path / "feedback"
    (feedback / "images").mkdir(parents=True)
    (feedback / "Annotations").mkdir()
    (feedback / "images" / "ab12.jpg").write_bytes(b"img")
    (feedback / "Annotations" / "ab12.xml").write_text("<annotation/>")
    assert feedback_pairs(feedback) == [(feedback / "images" / "ab12.jpg", feedback / "Annotations" / "ab12.xml")]
    merge_feedback(feedback, RetrainConfig(data=str(data)))
    assert (data / "feedback" / "images" / "ab12.jpg").is_file()
    assert (data / "feedback" / "Annotations" / "ab12.xml").is_file()
