"""crop_patches measures the skin tone around each lesion: ita and skin_tone in crops.parquet and
patches.parquet, the tone mix per split in crop_report.json, and a re-run reuses the measurement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.common.skin_tone import ita_of_pixels
from components.crop_patches.core import CROPS, PATCHES, REPORT, run
from components.crop_patches.split import SplitConfig
from lesionops.synth.skin import SKIN_TONES
from tests.components.test_crop_patches import TASK, _accepted, _cfg

BOX = (101, 81, 220, 200, "a")  # labelImg, 1-based inclusive: pixels [100:220, 80:200]


def _skin_photo(path: Path, tone: np.ndarray, seed: int) -> None:
    """Uniform skin with a red plaque inside BOX (which must not count as skin tone)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(tone + rng.normal(0, 2, (300, 400, 3)), 0, 255).astype(np.uint8)
    pixels[80:200, 100:220] = (170, 40, 50)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)


def test_crops_carry_the_skin_tone_around_the_lesion(tmp_path: Path) -> None:
    src, specs = tmp_path / "src", []
    for i in range(6):
        tone = SKIN_TONES[0] if i % 2 else SKIN_TONES[5]  # very light and dark patients
        _skin_photo(src / f"images/p{i}.jpg", tone, i)
        camera = "DermLite DL4" if i < 3 else ""  # ingest's camera column: metadata.csv or EXIF
        specs.append({"rel": f"images/p{i}.jpg", "patient": f"P{i}", "boxes": [BOX], "camera": camera})
    cfg = _cfg(split=SplitConfig(train=0.34, val=0.33, test=0.33))
    run(cfg, TASK, _accepted(src, tmp_path / "v1", specs), src, tmp_path / "out")
    crops = pd.read_parquet(tmp_path / "out" / CROPS).set_index("rel_path")
    light, dark = (ita_of_pixels(np.tile(SKIN_TONES[k].astype(np.uint8), (4, 4, 1))) for k in (0, 5))
    for i in range(6):
        row = crops.loc[f"images/p{i}.jpg"]
        assert row.ita == pytest.approx(light if i % 2 else dark, abs=2.0)  # the plaque is left out
        assert row.skin_tone == ("very_light" if i % 2 else "dark")
    patches = pd.read_parquet(tmp_path / "out" / PATCHES)
    assert {"ita", "skin_tone"} <= set(patches.columns) and "tone_key" not in patches.columns
    cameras = [crops.loc[f"images/p{i}.jpg", "camera"] for i in range(6)]
    assert cameras == ["DermLite DL4"] * 3 + [None] * 3  # carried for results per camera
    assert set(patches.camera.dropna()) == {"DermLite DL4"}
    report = json.loads((tmp_path / "out" / REPORT).read_text(encoding="utf-8"))["skin_tone"]
    per_split = report["per_split"]
    assert sum(s["measured"] for s in per_split.values()) == 6
    shares = {k: sum(s["mix"][k] * s["measured"] for s in per_split.values()) for k in ("very_light", "dark")}
    assert shares == pytest.approx({"very_light": 3, "dark": 3}, abs=0.01)


def test_a_rerun_reuses_the_tone_of_unchanged_images(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _skin_photo(src / "images/p0.jpg", SKIN_TONES[2], 0)
    specs = [{"rel": "images/p0.jpg", "patient": "P0", "boxes": [BOX]}]
    acc = _accepted(src, tmp_path / "v1", specs)
    run(_cfg(), TASK, acc, src, tmp_path / "out")
    table = tmp_path / "out" / CROPS
    crops = pd.read_parquet(table)
    crops["ita"] = 12.5  # what a previous run measured for the same image and boxes
    crops.to_parquet(table, index=False)
    run(_cfg(), TASK, acc, src, tmp_path / "out")
    assert pd.read_parquet(table).ita.tolist() == [12.5]
    moved = [{"rel": "images/p0.jpg", "patient": "P0", "boxes": [(11, 11, 60, 60, "a")]}]
    run(_cfg(), TASK, _accepted(src, tmp_path / "v2", moved), src, tmp_path / "out")
    assert pd.read_parquet(table).ita.iloc[0] != 12.5  # other boxes: measured again
