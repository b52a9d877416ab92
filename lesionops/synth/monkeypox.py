"""Synthetic colour photos of skin rashes: monkeypox vs other rashes (seed 004), saved as JPEGs.

Monkeypox lesions are drawn as the clinical descriptions have them: firm, well-circumscribed,
deep-seated pustules of similar size and of the same stage across the photo, often umbilicated
(a central dip), on an erythematous rim, later crusting. "Other" mixes what the seed's second
class held: chickenpox (vesicles of mixed stages and sizes, "dew drops on a rose petal", crusts
next to fresh papules), measles (blotchy, confluent red maculopapular rash) and acne-like papules
and small pustules. Some chickenpox vesicles look umbilicated and some monkeypox photos show few
lesions, so the classes overlap as in practice. Skin tone, lighting and blur vary per photo.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from lesionops.synth.render import blur, cloud, grid, noise, smoothstep
from lesionops.synth.skin import SKIN_TONES
from lesionops.synth.whole_image import Kind, Shot

Rng = np.random.Generator
CLASSES = ("monkeypox", "other")
PRIORS = (0.45, 0.55)  # the Monkeypox Skin Lesion Dataset: 102 monkeypox vs 126 others
SITES = ("face", "arm", "forearm", "hand", "trunk", "back", "leg", "genital_area")
PUS = np.array([238, 226, 188], dtype=np.float32)
CRUST = np.array([92, 58, 40], dtype=np.float32)
RED = np.array([196, 64, 58], dtype=np.float32)


def _patient(prng: Rng) -> tuple[np.ndarray, float, str]:
    """Skin tone, lesion scale (fraction of the short side) and, for 'other', which disease."""
    pos = prng.beta(1.3, 1.8) * (len(SKIN_TONES) - 1)
    i = min(int(pos), len(SKIN_TONES) - 2)
    tone = SKIN_TONES[i] + (SKIN_TONES[i + 1] - SKIN_TONES[i]) * (pos - i)
    other = str(prng.choice(["chickenpox", "measles", "acne"], p=[0.5, 0.3, 0.2]))
    return tone, prng.uniform(0.05, 0.09), other


def _darken(rgb: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """Inflammation looks brown-violet on dark skin, not pink."""
    return rgb * (0.45 + 0.55 * float(tone.mean() / SKIN_TONES[0].mean()))


def _lesion(
    img: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    cx: float,
    cy: float,
    r: float,
    tone: np.ndarray,
    stage: str,
    umbilicated: bool,
    rng: Rng,
) -> None:
    """Paint one papule/vesicle/pustule/crust in place: halo, dome, centre, highlight."""
    h, w = img.shape[:2]
    reach = int(r * 3.2 * min(h, w) / 2) + 2
    px, py = int((cx + 1) / 2 * w), int((cy + 1) / 2 * h)
    ys, xs = slice(max(0, py - reach), min(h, py + reach)), slice(max(0, px - reach), min(w, px + reach))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return
    aspect = w / h
    d = np.hypot((x[:, xs] - cx) * aspect, y[ys, :] - cy) / r * rng.uniform(0.9, 1.1)
    sub = img[ys, xs]
    halo = np.exp(-((d / rng.uniform(1.5, 2.2)) ** 2)) * rng.uniform(0.35, 0.7)
    sub += (_darken(RED, tone) - sub) * halo[..., None]
    dome = smoothstep((1 - d) / 0.25 + 0.5)
    if stage == "papule":
        sub += (_darken(RED * 0.85, tone) - sub) * (dome * 0.8)[..., None]
    elif stage in ("pustule", "vesicle"):
        colour = PUS if stage == "pustule" else np.array([228, 205, 200], dtype=np.float32)
        opacity = 0.9 if stage == "pustule" else 0.55  # vesicles are translucent: skin shows through
        sub += (colour - sub) * (dome * opacity)[..., None]
        if umbilicated:
            dip = smoothstep((0.32 - d) / 0.15 + 0.5)
            sub += (_darken(np.array([150, 110, 90], dtype=np.float32), tone) - sub) * (dip * 0.7)[..., None]
        shine = np.exp(-((np.hypot((x[:, xs] - cx + 0.35 * r) * aspect, y[ys, :] - cy + 0.35 * r) / (0.25 * r)) ** 2))
        sub += (255 - sub) * (shine * 0.5)[..., None]
    else:  # crust
        sub += (CRUST * rng.uniform(0.7, 1.1) - sub) * (dome * 0.95)[..., None]
    img[ys, xs] = sub


def _centres(rng: Rng, n: int, clustered: bool) -> list[tuple[float, float]]:
    if not clustered:
        return [(rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9)) for _ in range(n)]
    cx, cy = rng.uniform(-0.4, 0.4, 2)
    return [
        (float(np.clip(cx + rng.normal(0, 0.35), -0.95, 0.95)), float(np.clip(cy + rng.normal(0, 0.35), -0.95, 0.95)))
        for _ in range(n)
    ]


def _paint(img: np.ndarray, label: str, tone: np.ndarray, scale: float, other: str, rng: Rng) -> None:
    h, w = img.shape[:2]
    x, y = grid(h, w)
    if label == "monkeypox":
        stage = str(rng.choice(["pustule", "pustule", "vesicle", "crust"]))  # one stage per photo
        size = scale * rng.uniform(1.0, 1.4)
        for cx, cy in _centres(rng, int(rng.integers(2, 16)), rng.random() < 0.5):
            _lesion(img, x, y, cx, cy, size * rng.uniform(0.85, 1.15), tone, stage, rng.random() < 0.7, rng)
        return
    if other == "measles":
        rash = cloud(rng, h, w, 0.05 * min(h, w), rng.uniform(0.3, 0.6))
        rash = rash * (0.5 + 0.5 * cloud(rng, h, w, 0.015 * min(h, w), 0.6))
        img += (_darken(RED * 1.05, tone) - img) * (rash * rng.uniform(0.4, 0.7))[..., None]
        return
    n = int(rng.integers(6, 30)) if other == "chickenpox" else int(rng.integers(5, 20))
    stages = ["papule", "vesicle", "pustule", "crust"] if other == "chickenpox" else ["papule", "papule", "pustule"]
    for cx, cy in _centres(rng, n, rng.random() < 0.4):
        r = scale * (rng.uniform(0.5, 1.4) if other == "chickenpox" else rng.uniform(0.35, 0.7))
        _lesion(img, x, y, cx, cy, r, tone, str(rng.choice(stages)), rng.random() < 0.1, rng)


def _photo(tone: np.ndarray, scale: float, other: str, label: str, size: tuple[int, int], rng: Rng) -> np.ndarray:
    h, w = size
    m = min(h, w)
    tone = tone * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    texture = 1 + 0.035 * noise(rng, h, w, m / 5) + 0.02 * noise(rng, h, w, 1.5)
    img = (tone[None, None, :] * texture[..., None]).astype(np.float32)
    _paint(img, label, tone, scale, other, rng)
    x, y = grid(h, w)
    ang, g = rng.uniform(0, 2 * math.pi), rng.uniform(0.05, 0.3)
    light = 1 + g * (x * math.cos(ang) + y * math.sin(ang)) - rng.uniform(0.05, 0.25) * (x * x + y * y) / 2
    img = img * light[..., None] * (1 + rng.normal(0, 0.04, 3)).astype(np.float32)
    if rng.random() < 0.35:  # the edge of the limb against a background
        edge = smoothstep((rng.uniform(0.6, 0.9) - (x * math.cos(ang) + y * math.sin(ang))) / 0.03)
        back = np.float32(rng.uniform(25, 190)) * (1 + rng.normal(0, 0.12, 3)).astype(np.float32)  # cloth, wall
        img = img * edge[..., None] + back * (1 - edge[..., None])
    img = blur(img, rng.uniform(0.0, 1.2) * m / 224) + rng.normal(0, rng.uniform(1, 4), (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_monkeypox(path: Path, shot: Shot, size: tuple[int, int], prng: Rng, rng: Rng) -> None:
    """Render one photo and save it as an RGB JPEG, as phone uploads arrive."""
    tone, scale, other = _patient(prng)
    Image.fromarray(_photo(tone, scale, other, shot.label, size, rng)).save(path, "JPEG", quality=90)


KIND = Kind(
    name="monkeypox",
    classes=CLASSES,
    priors=PRIORS,
    suffix=".jpg",
    tag="photo",
    per_patient=(1, 3),
    body_sites=SITES,
    label_source={"monkeypox": "pcr", "other": "clinical"},
    write=write_monkeypox,
)
