"""Skin tone as a measured quantity: the Individual Typology Angle (ITA°) of the skin in a photo.

ITA° = atan((L* − 50) / b*) · 180 / π in CIELAB (Chardon et al. 1991; categories after Del Bino
et al. 2006). It is what dermatology uses to describe constitutive skin colour, so a clinic whose
patients get darker shows up as one number moving, not as a faint mix of RGB means. CIELAB comes
from scikit-image (sRGB, D65), not hand-written colour maths.

Which pixels: the skin around the lesion. With labelImg boxes, every pixel outside them; without
(serving, the drift reference) the whole frame, where the lesion is a minority the median ignores.
Background and non-skin pixels are left out by colour: b* ≤ 3 (grey or bluish cloth, films,
shadows), L* < 20 (near-black), L* > 97 (specular highlights) or chroma C* > 45 (saturated red
plaques, dressings, ink: skin of any tone stays below ~35). The image's ITA is the median of
the per-pixel angles; NaN when under 5 % of the pixels look like skin (a grey film has no skin tone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage.color import rgb2lab

from components.common.images import load_reduced, to_rgb8

ITA_COLUMN, TONE_COLUMN = "ita", "skin_tone"
# Del Bino / Chardon categories, lightest first: (name, lower bound in degrees, exclusive).
TONES: tuple[tuple[str, float], ...] = (
    ("very_light", 55.0),
    ("light", 41.0),
    ("intermediate", 28.0),
    ("tan", 10.0),
    ("brown", -30.0),
    ("dark", -np.inf),
)
TONE_NAMES: tuple[str, ...] = tuple(name for name, _ in TONES)
MIN_B, MIN_L, MAX_L, MAX_CHROMA = 3.0, 20.0, 97.0, 45.0  # what counts as a skin pixel (module docstring)
MIN_SKIN_SHARE = 0.05

Box = tuple[float, float, float, float]  # labelImg / VOC: 1-based, inclusive, in the stored frame


def ita_of(lightness: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel ITA° from L* and b* arrays of the same shape (b* must be > 0: the caller picks skin pixels)."""
    return np.degrees(np.arctan((lightness - 50.0) / b))


def ita_of_pixels(rgb: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Median ITA° over the skin pixels of an (h, w, 3) uint8 RGB array, within `mask` when given."""
    lab = rgb2lab(rgb[..., :3].astype(np.float32) / 255.0)
    considered = np.ones(lab.shape[:2], dtype=bool) if mask is None else mask
    lightness, chroma = lab[..., 0], np.hypot(lab[..., 1], lab[..., 2])
    skin = considered & (lab[..., 2] > MIN_B) & (lightness >= MIN_L) & (lightness <= MAX_L) & (chroma <= MAX_CHROMA)
    if skin.sum() < max(1, MIN_SKIN_SHARE * considered.sum()):
        return float("nan")
    return float(np.median(ita_of(lightness[skin], lab[..., 2][skin])))  # two channels picked, not all three


def outside_boxes(shape: tuple[int, int], boxes: Iterable[Box], scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Mask of the pixels outside every box; boxes are in the full-size frame, `scale` = (sx, sy)
    from it to the array (a reduced decode)."""
    mask = np.ones(shape, dtype=bool)
    sx, sy = scale
    for xmin, ymin, xmax, ymax in boxes:
        x0, y0 = max(0, int((xmin - 1) * sx)), max(0, int((ymin - 1) * sy))
        x1, y1 = int(np.ceil(xmax * sx)), int(np.ceil(ymax * sy))
        mask[y0:y1, x0:x1] = False
    return mask


def image_ita(img: Image.Image, boxes: Sequence[Box] = (), full_size: tuple[int, int] | None = None) -> float:
    """ITA° of the skin outside `boxes` in `img` (possibly a reduced copy of a `full_size` image);
    the whole frame when no skin is left outside the boxes (a close-up filled by its lesion)."""
    rgb = np.asarray(to_rgb8(img))
    width, height = full_size or img.size
    mask = outside_boxes(rgb.shape[:2], boxes, (img.width / width, img.height / height)) if boxes else None
    ita = ita_of_pixels(rgb, mask)
    if mask is not None and np.isnan(ita):
        ita = ita_of_pixels(rgb)
    return ita


def read_ita(path: Path, boxes: Sequence[Box] = (), max_side: int = 256) -> float:
    """ITA° of one image file, decoded cheaply (images.load_reduced) to about `max_side`; DataError when unreadable."""
    small, size = load_reduced(path, max_side)
    return image_ita(small, boxes, size)


def tone_category(ita: float) -> str | None:
    """Del Bino category of one ITA° (None for NaN: no skin measured)."""
    if ita != ita:
        return None
    return next(name for name, low in TONES if ita > low)


def tone_categories(values: Iterable[float]) -> list[str | None]:
    return [tone_category(float(v)) for v in values]


def tone_mix(values: Iterable[float]) -> dict[str, float]:
    """Share of each category (lightest first) among the values with a measured tone."""
    cats = pd.Series([c for c in tone_categories(values) if c is not None], dtype=object)
    if cats.empty:
        return dict.fromkeys(TONE_NAMES, 0.0)
    counts = cats.value_counts()
    return {name: round(float(counts.get(name, 0)) / len(cats), 4) for name in TONE_NAMES}
