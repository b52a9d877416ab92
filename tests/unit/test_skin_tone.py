"""ITA° (components/common/skin_tone.py): the formula on known CIELAB values, the Del Bino categories,
which pixels count as skin, and that it orders the synthetic generator's skin tones light to dark."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr
from skimage.color import lab2rgb

from components.common.skin_tone import (
    TONE_NAMES,
    image_ita,
    ita_of_pixels,
    read_ita,
    tone_category,
    tone_mix,
)
from lesionops.synth import skin


def _uniform(lab: tuple[float, float, float], size: int = 16) -> np.ndarray:
    rgb = lab2rgb(np.array([[lab]], dtype=float))[0, 0]
    return np.tile(np.round(rgb * 255).astype(np.uint8), (size, size, 1))


@pytest.mark.parametrize("lab", [(80.0, 8.0, 14.0), (65.0, 12.0, 22.0), (55.0, 14.0, 25.0), (40.0, 14.0, 20.0)])
def test_ita_matches_the_direct_formula_on_known_lab_values(lab: tuple[float, float, float]) -> None:
    expected = math.atan((lab[0] - 50.0) / lab[2]) * 180 / math.pi
    assert ita_of_pixels(_uniform(lab)) == pytest.approx(expected, abs=1.0)  # 8-bit rounding of the colour


@pytest.mark.parametrize(
    "ita, name",
    [(70.0, "very_light"), (55.5, "very_light"), (50.0, "light"), (30.0, "intermediate"), (12.0, "tan")]
    + [(0.0, "brown"), (-29.0, "brown"), (-45.0, "dark"), (float("nan"), None)],
)
def test_del_bino_categories(ita: float, name: str | None) -> None:
    assert tone_category(ita) == name


def test_grey_and_near_black_pixels_are_not_skin() -> None:
    assert math.isnan(ita_of_pixels(np.full((20, 20, 3), 128, dtype=np.uint8)))  # a grey film: no tone
    frame = np.zeros((40, 40, 3), dtype=np.uint8)  # dark cloth around a patch of light skin
    frame[10:30, 10:30] = skin.SKIN_TONES[0].astype(np.uint8)
    assert ita_of_pixels(frame) == pytest.approx(ita_of_pixels(frame[10:30, 10:30]), abs=1e-6)


def test_the_lesion_inside_its_box_is_left_out(tmp_path: Path) -> None:
    pixels = np.tile(skin.SKIN_TONES[1].astype(np.uint8), (60, 80, 1))
    pixels[20:40, 30:50] = (150, 30, 40)  # a dark red plaque
    img = Image.fromarray(pixels)
    box = (31.0, 21.0, 50.0, 40.0)  # labelImg: 1-based, inclusive
    bare = ita_of_pixels(pixels[:20])
    assert image_ita(img, [box]) == pytest.approx(bare, abs=1e-6)
    img.save(tmp_path / "p.png")
    assert read_ita(tmp_path / "p.png", [box], max_side=40) == pytest.approx(bare, abs=1.0)  # reduced decode


def test_the_generator_tones_are_ordered_light_to_dark_and_span_the_categories() -> None:
    itas = [ita_of_pixels(np.tile(t.astype(np.uint8), (8, 8, 1))) for t in skin.SKIN_TONES]
    assert all(a > b for a, b in zip(itas, itas[1:], strict=False))
    assert tone_category(itas[0]) == "very_light" and tone_category(itas[-1]) == "dark"


def test_rendered_photos_are_ordered_by_their_patients_tone() -> None:
    """Whole synthetic photos (lesions, lighting, background, noise): ITA outside the boxes follows
    the tone the generator drew for the patient."""
    cfg = skin.SynthConfig(out_dir=Path("."), n_images=60, seed=3, image_width=160, image_height=120)
    shots = skin._plan(cfg, skin._validate(cfg))
    first = {}
    for shot in shots:
        first.setdefault(shot.patient, shot)
    tones, itas = [], []
    for patient, shot in sorted(first.items())[:16]:
        pixels, boxes = skin._render(cfg, shot)
        tones.append(float(skin._patient_look(cfg, patient)[0].mean()))
        itas.append(image_ita(Image.fromarray(pixels), [(b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes]))
    assert spearmanr(tones, itas).statistic > 0.9


def test_tone_mix_shares_sum_to_one_and_ignore_unmeasured() -> None:
    mix = tone_mix([60.0, 45.0, 45.0, float("nan"), -50.0])
    assert list(mix) == list(TONE_NAMES) and sum(mix.values()) == pytest.approx(1.0)
    assert mix["light"] == 0.5 and mix["dark"] == 0.25
