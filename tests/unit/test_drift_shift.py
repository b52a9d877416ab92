"""Shifted synthetic streams: each shift moves the image statistics (or labels) it is meant to, seeded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.errors import ConfigError
from components.common.image_stats import image_features
from lesionops.synth.shift import ShiftConfig, StreamImage, shifted_images, write_stream

N, SIZE = 40, {"width": 160, "height": 120}


def feats(images: list[StreamImage]) -> pd.DataFrame:
    return pd.DataFrame([image_features(i.image()) for i in images])


@pytest.fixture(scope="module")
def base() -> list[StreamImage]:
    return shifted_images("none", 1.0, N, seed=5, **SIZE)


def test_post_processing_shifts_keep_the_same_photos(base: list[StreamImage]) -> None:
    for shift in ("lighting", "blur", "camera"):
        moved = shifted_images(shift, 1.0, N, seed=5, **SIZE)
        assert [i.label for i in moved] == [i.label for i in base]
        assert [i.patient for i in moved] == [i.patient for i in base]


def test_lighting_darkens_but_keeps_colourfulness(base: list[StreamImage]) -> None:
    before, after = feats(base), feats(shifted_images("lighting", 1.0, N, seed=5, **SIZE))
    assert after.brightness.median() < 0.75 * before.brightness.median()
    assert abs(after.saturation.median() - before.saturation.median()) < 0.05


def test_blur_lowers_sharpness_only(base: list[StreamImage]) -> None:
    before, after = feats(base), feats(shifted_images("blur", 1.0, N, seed=5, **SIZE))
    assert after.sharpness.median() < 0.5 * before.sharpness.median()
    assert abs(after.brightness.median() - before.brightness.median()) < 2


def test_camera_changes_size_colour_and_compression(base: list[StreamImage]) -> None:
    moved = shifted_images("camera", 1.0, N, seed=5, **SIZE)
    before, after = feats(base), feats(moved)
    assert (after.width.iloc[0], after.height.iloc[0]) == (240, 180)
    assert (after.mean_r / after.mean_b).median() > 1.1 * (before.mean_r / before.mean_b).median()
    # quality 40 at 2.25x the pixels: fewer bytes per pixel than quality 90
    bpp = [len(i.data) / (i.image().width * i.image().height) for i in (base[0], moved[0])]
    assert bpp[1] < 0.7 * bpp[0]


def test_skin_tone_shift_darkens_the_skin() -> None:
    before = feats(shifted_images("none", 1.0, 80, seed=6, **SIZE))
    after = feats(shifted_images("skin_tone", 1.0, 80, seed=6, **SIZE))
    assert after.brightness.mean() < before.brightness.mean() - 8


def test_class_prior_shift_makes_rare_diseases_common() -> None:
    before = pd.Series([i.label for i in shifted_images("none", 1.0, 120, seed=2, **SIZE)]).value_counts(normalize=True)
    after = pd.Series([i.label for i in shifted_images("class_prior", 1.0, 120, seed=2, **SIZE)]).value_counts(
        normalize=True
    )
    assert after["lichen_planus"] > before["lichen_planus"] + 0.15
    assert after["psoriasis"] < before["psoriasis"] - 0.15


def test_wrong_modality_mixes_in_grey_films() -> None:
    images = shifted_images("wrong_modality", 1.0, 100, seed=3, **SIZE)
    xrays = [i for i in images if i.modality == "chest_xray"]
    assert 8 <= len(xrays) <= 35  # 20 % expected
    assert all(i.label == "chest_xray" and i.box is None for i in xrays)
    assert max(image_features(i.image())["saturation"] for i in xrays) < 0.01
    assert min(image_features(i.image())["saturation"] for i in images if i.modality == "skin") > 0.1


def test_seeded_and_boxes_inside_the_image() -> None:
    a = shifted_images("lighting", 0.5, 6, seed=9, **SIZE)
    assert [i.data for i in a] == [i.data for i in shifted_images("lighting", 0.5, 6, seed=9, **SIZE)]
    assert [i.data for i in a] != [i.data for i in shifted_images("lighting", 0.5, 6, seed=10, **SIZE)]
    for item in a:
        x1, y1, x2, y2 = item.box
        assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120


def test_severity_zero_is_the_unshifted_stream(base: list[StreamImage]) -> None:
    assert [i.data for i in shifted_images("blur", 0.0, N, seed=5, **SIZE)] == [i.data for i in base]


def test_write_stream(tmp_path: Path) -> None:
    doc = write_stream(tmp_path, ShiftConfig("wrong_modality", 1.0, 12, seed=1, **SIZE))
    rows = list(csv.DictReader((tmp_path / "stream.csv").open(encoding="utf-8")))
    assert len(rows) == 12 and all((tmp_path / r["file"]).is_file() for r in rows)
    assert sum(doc["per_label"].values()) == 12
    assert json.loads((tmp_path / "shift.json").read_text())["shift"] == "wrong_modality"


@pytest.mark.parametrize("bad", [{"shift": "fog"}, {"severity": -1.0}, {"n": 0}])
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(ConfigError, match="synth shift"):
        ShiftConfig(**bad)


def test_every_shift_runs() -> None:
    from lesionops.synth.shift import SHIFTS

    for shift in SHIFTS:
        assert len(shifted_images(shift, 1.0, 3, seed=0, **SIZE)) == 3
    assert np.isfinite(list(image_features(shifted_images("camera", 2.0, 1, **SIZE)[0].image()).values())).all()
