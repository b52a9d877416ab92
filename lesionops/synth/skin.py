"""Synthetic clinical photographs of erythemato-squamous skin diseases, annotated as labelImg would.

Modelled on a thesis dataset: five diseases photographed at several body sites and zoom levels,
one diagnosis per patient, imbalanced classes (psoriasis common, lichen planus rare), boxes drawn a
little too large by the annotators, and photos often taken on a dark background. Class appearances
are distinctive but deliberately overlap (parapsoriasis looks like a faint psoriasis) so that a small
CNN learns them well but not perfectly, as with the real images. Everything derives from the seed:
the plan from (seed, 0), a patient's look from (seed, 1, patient), an image from (seed, 2, index).

Over ~400 lines on purpose: one appearance model per disease and the photo compositing that uses them read best together; split, each half would need the other to make sense.
"""

from __future__ import annotations

import colorsys
import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from components.common.errors import ConfigError
from components.common.voc import VocAnnotation, VocBox, write_voc

DEFAULT_CLASSES = ("lichen_planus", "parapsoriasis", "lupus_erythematosus", "eczema", "psoriasis")
DEFAULT_PRIORS = {
    "lichen_planus": 0.08,
    "parapsoriasis": 0.14,
    "lupus_erythematosus": 0.14,
    "eczema": 0.22,
    "psoriasis": 0.42,
}
BODY_SITES = ("arm", "forearm", "elbow", "hand", "leg", "knee", "trunk", "back", "scalp")
# Lesion radius as a fraction of the short image side: z3 is the close-up.
ZOOM_RADIUS = {1: (0.05, 0.09), 2: (0.08, 0.14), 3: (0.14, 0.24)}
# Fitzpatrick-like skin tones, light to dark (RGB reflectance before lighting).
SKIN_TONES = np.array(
    [[236, 204, 184], [226, 184, 156], [204, 156, 120], [170, 120, 88], [128, 86, 62], [88, 60, 46]], dtype=np.float32
)
SCALE_RGB = np.array([232, 232, 238], dtype=np.float32)  # silvery-white scale
_OUR_FILES = re.compile(r"^P\d{4,}_[a-z]+_z[123]_\d+\.(jpg|xml)$")

Rng = np.random.Generator
Layer = tuple[np.ndarray, np.ndarray]  # (alpha, rgb) of one lesion over its patch


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; class_priors=None means the thesis-like imbalance in DEFAULT_PRIORS."""

    out_dir: Path
    n_images: int = 400
    seed: int = 7
    image_width: int = 640
    image_height: int = 480
    classes: tuple[str, ...] = DEFAULT_CLASSES
    class_priors: tuple[float, ...] | None = None
    images_per_patient_min: int = 2
    images_per_patient_max: int = 6
    box_margin: float = 0.08
    jpeg_quality: int = 90
    # labelImg stores the annotator's absolute image path; None writes the real output path.
    # The default is a fixed annotator-machine path, so the bytes (and data.dvc) do not depend
    # on where the dataset is generated — and validation sees paths from "another machine".
    annotator_dir: str | None = "/home/dermatologist/ES-Raw/images"


@dataclass(frozen=True)
class SynthSummary:
    """Counts of what was written, for the CLI to print and tests to check."""

    n_images: int
    n_boxes: int
    n_patients: int
    per_class_boxes: dict[str, int]


@dataclass(frozen=True)
class _Shot:
    """One photograph to render, decided up front so rendering order cannot change the data."""

    index: int
    patient: int
    label: str
    body_site: str
    zoom: int
    k: int
    label_source: str

    @property
    def stem(self) -> str:
        return f"P{self.patient + 1:04d}_{self.body_site}_z{self.zoom}_{self.k}"


@dataclass(frozen=True)
class _Patch:
    """The window of the image around one lesion; dx/dy are offsets from the lesion centre."""

    y0: int
    x0: int
    dx: np.ndarray  # shape (1, w)
    dy: np.ndarray  # shape (h, 1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.dy.shape[0], self.dx.shape[1]

    @property
    def slices(self) -> tuple[slice, slice]:
        h, w = self.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


def _validate(cfg: SynthConfig) -> tuple[float, ...]:
    """Fail before touching the disk, with a message naming the bad field; returns the priors."""
    priors = (
        cfg.class_priors if cfg.class_priors is not None else tuple(DEFAULT_PRIORS.get(c, 0.0) for c in cfg.classes)
    )
    checks = [
        (cfg.n_images >= 1, f"n_images must be >= 1, got {cfg.n_images}"),
        (cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}"),
        (
            min(cfg.image_width, cfg.image_height) >= 64,
            f"image size must be at least 64x64, got {cfg.image_width}x{cfg.image_height}",
        ),
        (
            len(cfg.classes) > 0 and len(set(cfg.classes)) == len(cfg.classes),
            f"classes must be non-empty and unique, got {cfg.classes}",
        ),
        (
            set(cfg.classes) <= set(_RENDERERS),
            f"no appearance model for {sorted(set(cfg.classes) - set(_RENDERERS))}; "
            f"known classes: {list(DEFAULT_CLASSES)}",
        ),
        (
            1 <= cfg.images_per_patient_min <= cfg.images_per_patient_max,
            "need 1 <= images_per_patient_min <= images_per_patient_max, got "
            f"{cfg.images_per_patient_min}..{cfg.images_per_patient_max}",
        ),
        (0.0 <= cfg.box_margin <= 0.5, f"box_margin must be in [0, 0.5], got {cfg.box_margin}"),
        (1 <= cfg.jpeg_quality <= 100, f"jpeg_quality must be in [1, 100], got {cfg.jpeg_quality}"),
        (len(priors) == len(cfg.classes), f"class_priors has {len(priors)} values for {len(cfg.classes)} classes"),
        (
            all(math.isfinite(p) and p >= 0 for p in priors) and sum(priors) > 0,
            f"class_priors must be finite, >= 0 and not all zero, got {priors}",
        ),
    ]
    for ok, problem in checks:
        if not ok:
            raise ConfigError(f"synth config: {problem}")
    return tuple(p / sum(priors) for p in priors)


def _patient_sizes(cfg: SynthConfig, rng: Rng) -> list[int]:
    """Images per patient; the remainder is folded in so no patient is left with a lone image."""
    lo, hi, left, sizes = cfg.images_per_patient_min, cfg.images_per_patient_max, cfg.n_images, []
    while left > 0:
        c = min(int(rng.integers(lo, hi + 1)), left)
        if 0 < left - c < lo:
            c = left - lo if left - lo >= lo else left
        sizes.append(c)
        left -= c
    return sizes


def _plan(cfg: SynthConfig, priors: tuple[float, ...]) -> list[_Shot]:
    """Assign diagnoses by largest quota deficit (plus a little noise) so that even small datasets
    match the priors in images, not only in expectation."""
    rng = np.random.default_rng([cfg.seed, 0])
    p = np.asarray(priors)
    assigned, total, shots = np.zeros(len(p)), 0, []
    for patient, size in enumerate(_patient_sizes(cfg, rng)):
        deficit = p * (total + size) - assigned + rng.uniform(0, 1, len(p))
        label = int(np.argmax(np.where(p > 0, deficit, -np.inf)))
        assigned[label] += size
        total += size
        sites = rng.choice(BODY_SITES, size=int(rng.integers(1, 4)), replace=False)
        source = "pathology" if rng.random() < 0.85 else "clinical"
        for k in range(1, size + 1):
            shots.append(
                _Shot(
                    len(shots), patient, cfg.classes[label], str(rng.choice(sites)), int(rng.integers(1, 4)), k, source
                )
            )
    return shots


def _pick(rng: Rng, lo: float, hi: float, u: float | None = None, jitter: float = 0.15) -> float:
    """A value in [lo, hi]; with a patient style u the value clusters per patient, as in real data."""
    x = rng.random() if u is None else float(np.clip(u + rng.normal(0, jitter), 0, 1))
    return lo + (hi - lo) * x


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _tint(rgb: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Darken lesion colours on dark skin (inflammation looks violaceous-brown there, not pink)."""
    return rgb * (0.45 + 0.55 * float(skin.mean() / SKIN_TONES[0].mean()))


def _noise(rng: Rng, h: int, w: int, cell: float) -> np.ndarray:
    """Band-limited noise (zero mean, unit std) with blobs about `cell` pixels wide."""
    small = rng.standard_normal((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)))
    n = np.asarray(Image.fromarray(small.astype(np.float32)).resize((w, h), Image.Resampling.BICUBIC))
    return (n - n.mean()) / (n.std() + 1e-6)


def _flakes(rng: Rng, h: int, w: int, cell: float, coverage: float) -> np.ndarray:
    """Soft mask covering about `coverage` of the area: scale, mottling, follicular plugs."""
    thr = NormalDist().inv_cdf(1 - min(max(coverage, 1e-3), 0.999))
    return np.clip((_noise(rng, h, w, cell) - thr) * 2.5, 0, 1)


def _blob(rng: Rng, p: _Patch, a: float, b: float, irregular: float) -> np.ndarray:
    """Normalised radius (<1 inside) of a rotated ellipse with a wavy outline: irregular plaques."""
    ang = rng.uniform(0, math.pi)
    c, s = math.cos(ang), math.sin(ang)
    u, v = (p.dx * c + p.dy * s) / a, (p.dy * c - p.dx * s) / b
    theta, r = np.arctan2(v, u), np.ones(1, dtype=np.float32)
    for k in range(2, 6):
        r = r + irregular * rng.uniform(0, 1) / (k - 1) * np.cos(k * theta + rng.uniform(0, 6.3))
    return np.hypot(u, v) / np.clip(r, 0.35, 1.45)


def _edge(t: np.ndarray, width: float) -> np.ndarray:
    """Smoothstep fall-off across the outline: small width = well demarcated, large = ill-defined."""
    x = np.clip((1 - t) / width + 0.5, 0, 1)
    return x * x * (3 - 2 * x)


def _mix(rgb: np.ndarray, top: np.ndarray, a: np.ndarray) -> np.ndarray:
    return rgb + (top - rgb) * a[..., None]


def _fill(p: _Patch, color: np.ndarray) -> np.ndarray:
    return np.broadcast_to(color, (*p.shape, 3)).astype(np.float32)


# Each disease returns (alpha, rgb) over the patch; r = lesion radius in px, u = patient style.
def _psoriasiform(
    rng: Rng, p: _Patch, r: float, u: np.ndarray, skin: np.ndarray, severity: float, aspect: float, hue: float
) -> Layer:
    """Psoriasis and parapsoriasis on one severity scale (0 = faint thin patch, 1 = thick plaque);
    their severity ranges overlap, which is what makes them confusable in the thesis."""
    sv = float(np.clip(severity, 0, 1))
    t = _blob(rng, p, r * aspect, r, _pick(rng, 0.1, 0.3))
    color = _hsv(hue, 0.25 + 0.55 * sv + rng.normal(0, 0.05), 0.88 - 0.26 * sv + rng.normal(0, 0.04))
    rgb = _fill(p, _tint(color, skin)) * (1 + 0.06 * _noise(rng, *p.shape, max(2, r * 0.1)))[..., None]
    fine = _flakes(rng, *p.shape, max(1.2, r * (0.025 + 0.035 * sv)), _pick(rng, 0.5, 0.8))
    flakes = fine * _flakes(rng, *p.shape, r * 0.3, 0.05 + 0.8 * sv + rng.normal(0, 0.08))
    rgb = _mix(rgb, _tint(SCALE_RGB, skin) * 1.1, flakes * _edge(t, 0.5) * (0.4 + 0.55 * sv))
    return _edge(t, 0.35 - 0.3 * sv + rng.uniform(0, 0.05)) * (0.45 + 0.5 * sv), rgb


def _psoriasis(rng: Rng, p: _Patch, r: float, u: np.ndarray, skin: np.ndarray) -> Layer:
    """Well-demarcated thick red plaque under heavy silvery-white scale (milder in some patients)."""
    return _psoriasiform(
        rng, p, r, u, skin, _pick(rng, 0.3, 1.0, u[0], 0.2), _pick(rng, 1.0, 1.8), _pick(rng, -0.03, 0.02)
    )


def _parapsoriasis(rng: Rng, p: _Patch, r: float, u: np.ndarray, skin: np.ndarray) -> Layer:
    """Large thin elongated salmon-pink patch with fine scale: a faint psoriasis."""
    return _psoriasiform(
        rng, p, r, u, skin, _pick(rng, 0.0, 0.6, u[0], 0.2), _pick(rng, 1.2, 2.4), _pick(rng, -0.01, 0.05)
    )


def _lupus(rng: Rng, p: _Patch, r: float, u: np.ndarray, skin: np.ndarray) -> Layer:
    """Round red discoid plaque: darker active border, pale atrophic centre, follicular plugs."""
    t = _blob(rng, p, r * _pick(rng, 1.0, 1.3), r, _pick(rng, 0.05, 0.2))
    red = _tint(_hsv(_pick(rng, -0.07, 0.02), _pick(rng, 0.45, 0.8, u[0]), _pick(rng, 0.55, 0.8)), skin)
    rgb = _fill(p, red)
    ring = np.exp(-(((t - 0.82) / _pick(rng, 0.1, 0.2)) ** 2)) * _pick(rng, 0.05, 0.45, u[1])
    rgb = rgb * (1 - ring)[..., None]
    scar = _tint(np.array([236, 214, 206], dtype=np.float32), skin)
    centre = np.clip(1 - t / _pick(rng, 0.4, 0.65), 0, 1) * _pick(rng, 0.1, 0.8, u[2])
    rgb = _mix(rgb, scar, centre)
    scale = _flakes(rng, *p.shape, max(1.2, r * 0.04), _pick(rng, 0.0, 0.35)) * _edge(t, 0.5)
    rgb = _mix(rgb, _tint(SCALE_RGB, skin), scale * 0.7)
    plugs = _flakes(rng, *p.shape, max(1.2, r * 0.04), _pick(rng, 0.01, 0.06)) * (t < 0.7)
    rgb = _mix(rgb, red * 0.45, plugs)
    return _edge(t, _pick(rng, 0.06, 0.25)) * _pick(rng, 0.7, 0.95), rgb


def _eczema(rng: Rng, p: _Patch, r: float, u: np.ndarray, skin: np.ndarray) -> Layer:
    """Ill-defined mottled red patch with blurry edges: acute ones with tiny vesicles, chronic
    ones (patient style u[2] low) with scale instead, which is where they meet parapsoriasis."""
    t = _blob(rng, p, r * _pick(rng, 1.0, 1.7), r, _pick(rng, 0.25, 0.5))
    red = _tint(_hsv(_pick(rng, -0.02, 0.04), _pick(rng, 0.45, 0.75, u[0]), _pick(rng, 0.6, 0.8)), skin)
    rgb = _fill(p, red)
    mottle = np.clip(0.75 + 0.3 * _noise(rng, *p.shape, r * 0.3), 0, 1)
    body = _edge(t, _pick(rng, 0.25, 0.9, u[1])) * mottle
    scale = _flakes(rng, *p.shape, max(1.2, r * 0.035), _pick(rng, 0.0, 0.35, 1 - u[2])) * body
    rgb = _mix(rgb, _tint(SCALE_RGB, skin), scale * 0.6)
    h, w = p.shape
    n = int(_pick(rng, 0, 60, u[2]) * (r / 30) ** 2) + 1
    ys, xs = rng.uniform(0, h, n), rng.uniform(0, w, n)
    keep = body[ys.astype(int), xs.astype(int)] > rng.uniform(0.2, 0.9, n)
    dots = Image.new("L", (w, h))
    draw, rad = ImageDraw.Draw(dots), max(0.8, r * 0.03)
    for y, x in zip(ys[keep], xs[keep], strict=True):
        draw.ellipse((x - rad, y - rad, x + rad, y + rad), fill=255)
    ves = np.asarray(dots.filter(ImageFilter.GaussianBlur(rad * 0.4)), dtype=np.float32) / 255
    rgb = _mix(rgb, np.array([250, 238, 220], dtype=np.float32), ves * _pick(rng, 0.5, 0.9))
    return np.maximum(body * _pick(rng, 0.7, 0.92), ves * 0.8), rgb


def _lichen_planus(rng: Rng, p: _Patch, r: float, u: np.ndarray, skin: np.ndarray) -> Layer:
    """A cluster of small flat violaceous polygonal papules, some with white Wickham striae."""
    h, w = p.shape
    cy, cx = -float(p.dy[0, 0]), -float(p.dx[0, 0])
    mask, striae = Image.new("L", (w, h)), Image.new("L", (w, h))
    draw, sdraw = ImageDraw.Draw(mask), ImageDraw.Draw(striae)
    for _ in range(int(rng.integers(6, 30))):
        dist, ang = r * 0.85 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        px, py, pr = cx + dist * math.cos(ang), cy + dist * math.sin(ang), r * _pick(rng, 0.1, 0.3)
        nv = int(rng.integers(5, 8))
        ang = np.linspace(0, 2 * math.pi, nv, endpoint=False) + rng.uniform(0, 1) + rng.normal(0, 0.15, nv)
        rad = pr * rng.uniform(0.75, 1.1, nv)
        draw.polygon(list(zip(px + rad * np.cos(ang), py + rad * np.sin(ang), strict=True)), fill=255)
        if rng.random() < u[1]:
            sdraw.line((px - pr * 0.6, py - pr * 0.2, px + pr * 0.6, py + pr * 0.3), fill=255, width=1)
    soft = ImageFilter.GaussianBlur(max(0.5, r * 0.02))
    alpha = np.asarray(mask.filter(soft), dtype=np.float32) / 255
    lines = np.asarray(striae, dtype=np.float32) / 255 * alpha
    violet = _tint(_hsv(_pick(rng, 0.78, 1.0, u[0]), _pick(rng, 0.3, 0.55), _pick(rng, 0.45, 0.65)), skin)
    rgb = _fill(p, violet) * (1 + 0.05 * _noise(rng, h, w, max(2, r * 0.05)))[..., None]
    rgb = _mix(rgb, np.array([235, 230, 235], dtype=np.float32), lines * 0.5)
    return alpha * _pick(rng, 0.75, 0.92, u[2]), rgb


_RENDERERS: dict[str, Callable[..., Layer]] = {
    "lichen_planus": _lichen_planus,
    "parapsoriasis": _parapsoriasis,
    "lupus_erythematosus": _lupus,
    "eczema": _eczema,
    "psoriasis": _psoriasis,
}
# Atypical presentations: some lesions look like a neighbouring disease and only pathology tells
# them apart. This caps achievable accuracy the way the real photographs do.
ATYPICAL_RATE = 0.06
_LOOKALIKE = {
    "psoriasis": ("parapsoriasis", "lupus_erythematosus"),
    "parapsoriasis": ("psoriasis", "eczema"),
    "eczema": ("parapsoriasis", "lupus_erythematosus"),
    "lupus_erythematosus": ("psoriasis", "eczema"),
    "lichen_planus": ("eczema", "lupus_erythematosus"),
}
_SIZE = {"parapsoriasis": 1.3, "lichen_planus": 1.1}  # parapsoriasis patches are large
# How far (in radii) each appearance can reach, so only that window of the image is computed.
_REACH = {"psoriasis": 2.4, "parapsoriasis": 3.6, "lupus_erythematosus": 2.2, "eczema": 3.6, "lichen_planus": 1.3}


def _skin_region(rng: Rng, h: int, w: int) -> np.ndarray:
    """Soft mask of where skin is: a wide band (a limb or trunk) with dark background beyond it,
    as in the thesis photos; 60 % of images are skin edge to edge. The centre is always skin."""
    if rng.random() < 0.6:
        return np.ones((h, w), dtype=np.float32)
    ang, m = rng.uniform(0, math.pi), min(h, w)
    d = (np.arange(w)[None, :] - w / 2) * math.cos(ang) + (np.arange(h)[:, None] - h / 2) * math.sin(ang)
    half, soft = m * rng.uniform(0.4, 0.75), max(1.0, m * rng.uniform(0.005, 0.02))
    return np.clip((half - np.abs(d - m * rng.uniform(-0.1, 0.1))) / soft, 0, 1).astype(np.float32)


def _place(rng: Rng, skin: np.ndarray, radii: list[float]) -> list[tuple[int, int]]:
    """Lesion centres on skin that do not pile on top of each other; the first one is guaranteed."""
    h, w = skin.shape
    centres: list[tuple[int, int]] = []
    for i, r in enumerate(radii):
        for _ in range(30):
            cy, cx = int(rng.uniform(0.1, 0.9) * h), int(rng.uniform(0.1, 0.9) * w)
            far = all(math.hypot(cy - y, cx - x) > 0.9 * (r + radii[j]) for j, (y, x) in enumerate(centres))
            if skin[cy, cx] > 0.95 and far:
                centres.append((cy, cx))
                break
        else:
            if i == 0:
                centres.append((h // 2, w // 2))
    return centres


def _patch(cy: int, cx: int, reach: int, h: int, w: int) -> _Patch:
    y0, y1, x0, x1 = max(0, cy - reach), min(h, cy + reach), max(0, cx - reach), min(w, cx + reach)
    dx = (np.arange(x0, x1, dtype=np.float32) - cx)[None, :]
    dy = (np.arange(y0, y1, dtype=np.float32) - cy)[:, None]
    return _Patch(y0, x0, dx, dy)


def _box(alpha: np.ndarray, p: _Patch, label: str, margin: float, h: int, w: int) -> VocBox | None:
    """labelImg box (1-based, inclusive) around the visible lesion, widened by `margin` per side."""
    ys, xs = np.nonzero(alpha > 0.25)
    if ys.size == 0:
        return None
    x0, x1, y0, y1 = xs.min() + p.x0, xs.max() + p.x0, ys.min() + p.y0, ys.max() + p.y0
    mx, my = margin * (x1 - x0 + 1), margin * (y1 - y0 + 1)
    xmin, xmax = max(1, math.floor(x0 - mx) + 1), min(w, math.ceil(x1 + mx) + 1)
    ymin, ymax = max(1, math.floor(y0 - my) + 1), min(h, math.ceil(y1 + my) + 1)
    return VocBox(label, xmin, ymin, xmax, ymax)


def _lighting(rng: Rng, h: int, w: int) -> np.ndarray:
    """Flash/room light: a linear gradient plus vignetting, and a slight white-balance cast."""
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    ang, g = rng.uniform(0, 2 * math.pi), rng.uniform(0.05, 0.3)
    gain = 1 + g * (x * math.cos(ang) + y * math.sin(ang)) - rng.uniform(0.05, 0.2) * (x * x + y * y) / 2
    return gain[..., None] * (1 + rng.normal(0, 0.03, 3)).astype(np.float32)


def _patient_look(cfg: SynthConfig, patient: int) -> tuple[np.ndarray, np.ndarray]:
    """Skin tone and disease style are per patient: a patient's photos resemble each other, which
    is why splits must be by patient."""
    prng = np.random.default_rng([cfg.seed, 1, patient])
    pos = prng.beta(1.3, 1.8) * (len(SKIN_TONES) - 1)
    i = min(int(pos), len(SKIN_TONES) - 2)
    return SKIN_TONES[i] + (SKIN_TONES[i + 1] - SKIN_TONES[i]) * (pos - i), prng.random(3)


def _paint_lesions(
    cfg: SynthConfig, shot: _Shot, rng: Rng, img: np.ndarray, region: np.ndarray, skin: np.ndarray, style: np.ndarray
) -> list[VocBox]:
    """Paint 1-3 lesions of the patient's disease into img (in place) and return their boxes."""
    h, w = region.shape
    n = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1] if shot.zoom == 3 else [0.45, 0.33, 0.22]))
    lo, hi = ZOOM_RADIUS[shot.zoom]
    radii = [min(h, w) * rng.uniform(lo, hi) * _SIZE.get(shot.label, 1.0) for _ in range(n)]
    looks = [c for c in _LOOKALIKE[shot.label] if c in cfg.classes]
    boxes = []
    for (cy, cx), r in zip(_place(rng, region, radii), radii, strict=False):
        atypical = rng.random() < ATYPICAL_RATE and looks
        look = str(rng.choice(looks)) if atypical else shot.label
        p = _patch(cy, cx, int(r * _REACH[look]) + 3, h, w)
        alpha, rgb = _RENDERERS[look](rng, p, r, style, skin)
        alpha = alpha * region[p.slices]
        img[p.slices] = _mix(img[p.slices], rgb, alpha)
        box = _box(alpha, p, shot.label, cfg.box_margin, h, w)
        if box is not None:
            boxes.append(box)
    return boxes


def _render(cfg: SynthConfig, shot: _Shot) -> tuple[np.ndarray, list[VocBox]]:
    """Paint one photograph: textured skin, lesions, lighting, dark surround, sensor noise, blur."""
    skin, style = _patient_look(cfg, shot.patient)
    rng = np.random.default_rng([cfg.seed, 2, shot.index])
    h, w, m = cfg.image_height, cfg.image_width, min(cfg.image_height, cfg.image_width)
    texture = 1 + 0.03 * _noise(rng, h, w, m / 6) + 0.02 * _noise(rng, h, w, 1.5)
    img = skin[None, None, :] * texture[..., None]
    region = _skin_region(rng, h, w)
    boxes = _paint_lesions(cfg, shot, rng, img, region, skin, style)
    img = img * _lighting(rng, h, w)
    if region.min() < 1:  # the dark cloth/background the thesis photos were taken on
        dark = rng.uniform(8, 40) * (1 + 0.15 * _noise(rng, h, w, m / 8))
        img = _mix(dark[..., None] * np.array([1.0, 1.0, 1.1], dtype=np.float32), img, region)
    img = img + rng.normal(0, rng.uniform(1, 4), (h, w, 1)).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # out-of-focus shots
        blur = ImageFilter.GaussianBlur(rng.uniform(0.5, 1.8) * m / 480)
        out = np.asarray(Image.fromarray(out).filter(blur))
    return out, boxes


def _write_shot(cfg: SynthConfig, images: Path, shot: _Shot) -> list[VocBox]:
    """JPEG plus labelImg XML beside it (labelImg's default save layout)."""
    pixels, boxes = _render(cfg, shot)
    jpg = images / f"{shot.stem}.jpg"
    Image.fromarray(pixels).save(jpg, "JPEG", quality=cfg.jpeg_quality)
    ann = VocAnnotation(
        folder="images",
        filename=jpg.name,
        path=_annotator_path(cfg, jpg),
        width=cfg.image_width,
        height=cfg.image_height,
        depth=3,
        boxes=tuple(boxes),
    )
    write_voc(images / f"{shot.stem}.xml", ann)
    return boxes


def _remove_stale(images: Path, keep: set[str]) -> None:
    """A re-run with fewer images must not leave old ones behind; only files we name are touched."""
    for f in images.iterdir():
        if f.is_file() and _OUR_FILES.match(f.name) and f.name not in keep:
            f.unlink()


def _annotator_path(cfg: SynthConfig, jpg: Path) -> str:
    return str(jpg.resolve()) if cfg.annotator_dir is None else f"{cfg.annotator_dir}/{jpg.name}"


def generate_skin_dataset(cfg: SynthConfig, progress: bool = True) -> SynthSummary:
    """Write images/*.jpg + labelImg XML next to each, and metadata.csv; same cfg, same bytes."""
    priors = _validate(cfg)
    shots = _plan(cfg, priors)
    images = Path(cfg.out_dir) / "images"
    images.mkdir(parents=True, exist_ok=True)
    per_class = dict.fromkeys(cfg.classes, 0)
    n_boxes = 0
    from rich.progress import track  # only needed when generating

    for shot in track(shots, description="Synthesising skin images", disable=not progress):
        boxes = _write_shot(cfg, images, shot)
        per_class[shot.label] += len(boxes)
        n_boxes += len(boxes)
    _remove_stale(images, {f"{s.stem}.{ext}" for s in shots for ext in ("jpg", "xml")})
    with open(Path(cfg.out_dir) / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["filename", "patient_id", "body_site", "label_source"])
        for s in shots:
            writer.writerow([f"{s.stem}.jpg", f"P{s.patient + 1:04d}", s.body_site, s.label_source])
    return SynthSummary(len(shots), n_boxes, len({s.patient for s in shots}), per_class)
