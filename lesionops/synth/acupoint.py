"""Synthetic palm photos with acupoints boxed in labelImg (seed 000: Faster R-CNN acupoint finder).

Seed 000 photographed 2,000 hands (students and staff of a TCM university) and had teachers mark
the acupoints. An acupoint is not a visible mark: it is a position defined by anatomy (the
middle-finger tip, the wrist crease, between two metacarpals level with the heart line), so a
detector must learn it from the hand's landmarks. We draw a palm-side hand — palm, thenar
eminence, four fingers and a thumb with their creases, palm lines, wrist creases — at a random
pose, side, size and skin tone on a table, and box each point where that anatomy puts it: small
squares (8-20 px) as an annotator clicks them, with a pixel or two of hand jitter. Each person's
hands keep their proportions and tone across their photos, so splits must be by person.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from components.common.errors import ConfigError
from components.common.voc import VocAnnotation, VocBox, write_voc
from lesionops.synth.render import blur, grid, noise, smoothstep
from lesionops.synth.skin import SKIN_TONES, SynthSummary

Rng = np.random.Generator
ACUPOINTS = ("laogong", "shaofu", "yuji", "daling", "shenmen", "zhongchong")
# Right hand, palm towards the camera, fingers up; units of palm width, origin at the palm centre,
# +x towards the thumb. Fingers: (base x, length, width, splay in rad).
FINGERS = {
    "index": (0.33, 0.86, 0.18, 0.17),
    "middle": (0.11, 0.96, 0.19, 0.03),
    "ring": (-0.12, 0.88, 0.17, -0.12),
    "little": (-0.33, 0.68, 0.15, -0.3),
}
_LANDMARK = {
    "laogong": (0.2, -0.12),
    "shaofu": (-0.24, -0.18),
    "yuji": (0.43, 0.2),
    "daling": (0.0, 0.6),
    "shenmen": (-0.33, 0.6),
}  # zhongchong: the middle fingertip
_OUR_FILES = re.compile(r"^P\d{4,}_(left|right)_\d+\.(jpg|xml)$")
SUPERSAMPLE = 2


@dataclass(frozen=True)
class AcupointConfig:
    """What to generate; classes may be any subset of ACUPOINTS (the others are not boxed)."""

    out_dir: Path
    n_images: int = 300
    seed: int = 7
    image_width: int = 288
    image_height: int = 384
    classes: tuple[str, ...] = ACUPOINTS
    photos_per_person: tuple[int, int] = (2, 4)
    jpeg_quality: int = 90
    annotator_dir: str | None = "/home/tcm/acupoints/images"  # labelImg's <path>; None = real path


@dataclass(frozen=True)
class _Pose:
    """Where the hand lies in the photo: a similarity transform from hand units to pixels."""

    cx: float
    cy: float
    scale: float  # pixels per palm width
    angle: float
    mirror: float  # +1 right hand, -1 left hand

    def __call__(self, u: float, v: float) -> tuple[float, float]:
        u *= self.mirror
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.cx + self.scale * (u * c - v * s), self.cy + self.scale * (u * s + v * c)


def _validate(cfg: AcupointConfig) -> None:
    lo, hi = cfg.photos_per_person
    checks = [
        (cfg.n_images >= 1, f"n_images must be >= 1, got {cfg.n_images}"),
        (cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}"),
        (
            min(cfg.image_width, cfg.image_height) >= 64,
            f"image size must be at least 64x64, got {cfg.image_width}x{cfg.image_height}",
        ),
        (
            len(cfg.classes) > 0 and set(cfg.classes) <= set(ACUPOINTS) and len(set(cfg.classes)) == len(cfg.classes),
            f"classes must be unique names from {list(ACUPOINTS)}, got {list(cfg.classes)}",
        ),
        (1 <= lo <= hi, f"need 1 <= photos_per_person min <= max, got {lo}..{hi}"),
    ]
    for ok, problem in checks:
        if not ok:
            raise ConfigError(f"synth config (acupoint): {problem}")


@dataclass(frozen=True)
class _Look:
    """A person's hands: palm colour (palms are lighter than the back of the hand) and proportions."""

    tone: np.ndarray
    fingers: float  # finger length factor
    aspect: float  # palm length / width factor


def _person(cfg: AcupointConfig, person: int) -> _Look:
    prng = np.random.default_rng([cfg.seed, 1, person])
    pos = prng.beta(1.3, 1.8) * (len(SKIN_TONES) - 1)
    i = min(int(pos), len(SKIN_TONES) - 2)
    tone = SKIN_TONES[i] + (SKIN_TONES[i + 1] - SKIN_TONES[i]) * (pos - i)
    palm = tone + (np.array([238, 196, 182], dtype=np.float32) - tone) * 0.45
    return _Look(palm.astype(np.float32), prng.uniform(0.9, 1.1), prng.uniform(0.95, 1.1))


def _finger(name: str, spread: float, length_k: float) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Base, tip (hand units) and width of one finger; `spread` fans the fingers apart."""
    x0, length, width, splay = FINGERS[name]
    ang = -math.pi / 2 + splay * (1 + spread)
    return (x0, -0.52), (x0 + length * length_k * math.cos(ang), -0.52 + length * length_k * math.sin(ang)), width


class _Sketch:
    """The hand drawn at SUPERSAMPLE× in hand units: a silhouette mask and a layer of creases."""

    def __init__(self, pose: _Pose, look: _Look, size: tuple[int, int]) -> None:
        h, w = size
        self.pose, self.look, self.size = pose, look, size
        big = (w * SUPERSAMPLE, h * SUPERSAMPLE)
        self.mask, self.lines = Image.new("L", big), Image.new("L", big)
        self.fill, self.ink = ImageDraw.Draw(self.mask), ImageDraw.Draw(self.lines)
        self.unit = pose.scale * SUPERSAMPLE  # supersampled pixels per palm width

    def px(self, u: float, v: float) -> tuple[float, float]:
        x, y = self.pose(u, v * self.look.aspect)
        return x * SUPERSAMPLE, y * SUPERSAMPLE

    def capsule(self, a: tuple[float, float], b: tuple[float, float], width: float) -> None:
        self.fill.line([self.px(*a), self.px(*b)], fill=255, width=int(width * self.unit))
        r = width * self.unit / 2
        for cx, cy in (self.px(*a), self.px(*b)):
            self.fill.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)

    def crease(self, points: list[tuple[float, float]], width: float, value: int = 255) -> None:
        self.ink.line([self.px(*p) for p in points], fill=value, width=max(1, int(width * self.unit)), joint="curve")

    def hand(self, spread: float, thumb: float) -> dict[str, tuple[float, float]]:
        """Palm, forearm, thenar, fingers, thumb and their creases; returns the fingertips."""
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        self.fill.polygon(
            [
                self.px(
                    0.5 * np.sign(math.cos(a)) * abs(math.cos(a)) ** 0.5,
                    0.58 * np.sign(math.sin(a)) * abs(math.sin(a)) ** 0.5,
                )
                for a in t
            ],
            fill=255,
        )
        self.fill.polygon(
            [
                self.px(u, v)
                for u, v in ((-0.4, 0.4), (0.4, 0.4), (0.36, 0.75), (0.45, 2.5), (-0.45, 2.5), (-0.36, 0.75))
            ],
            fill=255,
        )  # wrist, forearm
        self.fill.polygon([self.px(0.3 + 0.2 * math.cos(a), 0.22 + 0.26 * math.sin(a)) for a in t], fill=255)
        tips = {}
        for name in FINGERS:
            base, tip, width = _finger(name, spread, self.look.fingers)
            self.capsule(base, tip, width)
            tips[name] = tip
            for f in (0.38, 0.68):  # interphalangeal creases
                mx, my = base[0] + (tip[0] - base[0]) * f, base[1] + (tip[1] - base[1]) * f
                self.crease([(mx - width / 2.6, my), (mx + width / 2.6, my)], 0.012, 160)
        ang = -math.pi / 2 + thumb + 0.9
        self.capsule((0.42, 0.28), (0.42 + 0.72 * math.cos(ang), 0.28 + 0.65 * math.sin(ang)), 0.24)
        for line in (
            [(-0.5, -0.26), (-0.1, -0.33), (0.25, -0.42)],  # heart line
            [(0.5, -0.14), (0.1, -0.08), (-0.3, 0.06)],  # head line
            [(0.46, -0.16), (0.24, 0.1), (0.16, 0.45)],  # life line around the thenar
            [(-0.4, 0.6), (0.0, 0.62), (0.42, 0.6)],
            [(-0.38, 0.7), (0.4, 0.7)],
        ):  # wrist creases
            self.crease(line, 0.016)
        return tips

    def layers(self) -> tuple[np.ndarray, np.ndarray]:
        """(hand mask, crease darkness) at the photo's size, antialiased by the downsampling."""
        h, w = self.size
        hand = np.asarray(self.mask.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32) / 255
        marks = np.asarray(self.lines.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32) / 255
        return hand, marks * hand


def _points(pose: _Pose, look: _Look, tips: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Each acupoint's pixel position: anatomy landmarks, and zhongchong just inside the middle fingertip."""
    pts = {name: pose(u, v * look.aspect) for name, (u, v) in _LANDMARK.items()}
    tx, ty = tips["middle"]
    bx, by = FINGERS["middle"][0], -0.52
    inset = 0.08 / max(math.hypot(tx - bx, ty - by), 1e-6)
    pts["zhongchong"] = pose(tx - (tx - bx) * inset, (ty - (ty - by) * inset) * look.aspect)
    return pts


def _boxes(cfg: AcupointConfig, pose: _Pose, look: _Look, tips: dict, rng: Rng) -> list[VocBox]:
    """Square labelImg boxes (8-20 px) where an annotator clicks each point, a little off-centre."""
    side = int(np.clip(round(0.16 * pose.scale), 8, 20))
    boxes = []
    for name, (px, py) in _points(pose, look, tips).items():
        if name not in cfg.classes:
            continue
        s = int(np.clip(side + rng.integers(-1, 2), 8, 20))
        cx, cy = px + rng.normal(0, 0.8), py + rng.normal(0, 0.8)
        xmin, ymin = round(cx - s / 2) + 1, round(cy - s / 2) + 1
        if xmin >= 1 and ymin >= 1 and xmin + s <= cfg.image_width and ymin + s <= cfg.image_height:
            boxes.append(VocBox(name, xmin, ymin, xmin + s, ymin + s))
    return boxes


def _render(cfg: AcupointConfig, look: _Look, right: bool, rng: Rng) -> tuple[np.ndarray, list[VocBox]]:
    """One photo: the hand at a random pose on a table, with its soft shadow; and its boxes."""
    h, w = cfg.image_height, cfg.image_width
    pose = _Pose(
        w * rng.uniform(0.42, 0.58),
        h * rng.uniform(0.45, 0.58),
        min(w, h) * rng.uniform(0.3, 0.4),
        rng.normal(0, 0.3),
        1.0 if right else -1.0,
    )
    sketch = _Sketch(pose, look, (h, w))
    tips = sketch.hand(rng.uniform(0.0, 1.5), rng.uniform(-0.2, 0.3))
    hand, marks = sketch.layers()
    table = np.array(rng.uniform(40, 220), dtype=np.float32) * (1 + rng.normal(0, 0.1, 3)).astype(np.float32)
    x, y = grid(h, w)
    back = table[None, None, :] * (1 + 0.04 * noise(rng, h, w, min(h, w) / 6)[..., None] + 0.1 * x[..., None])
    shadow = blur(np.roll(hand, (int(0.02 * h), int(0.02 * w)), axis=(0, 1)), 0.02 * min(h, w))
    back = back * (1 - 0.35 * shadow[..., None])
    depth = smoothstep(blur(hand, 0.03 * min(h, w)) * 1.6 - 0.3)  # rounded: edges fall into shade
    skin = look.tone[None, None, :] * (0.78 + 0.22 * depth[..., None])
    skin = skin * (1 + 0.03 * noise(rng, h, w, 2.0)[..., None]) * (1 - 0.28 * marks[..., None])
    img = back * (1 - hand[..., None]) + skin * hand[..., None]
    img = img * (1 + rng.uniform(-0.15, 0.15) * y[..., None]) + rng.normal(0, rng.uniform(1, 3), (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8), _boxes(cfg, pose, look, tips, rng)


def _plan(cfg: AcupointConfig) -> list[tuple[int, str, int]]:
    """(person, hand, k) per photo: each person photographs 2-4 hands, left or right."""
    rng = np.random.default_rng([cfg.seed, 0])
    lo, hi = cfg.photos_per_person
    shots: list[tuple[int, str, int]] = []
    person = 0
    while len(shots) < cfg.n_images:
        n = min(int(rng.integers(lo, hi + 1)), cfg.n_images - len(shots))
        shots += [(person, str(rng.choice(["left", "right"])), k + 1) for k in range(n)]
        person += 1
    return shots


def generate_acupoint_dataset(cfg: AcupointConfig, progress: bool = True) -> SynthSummary:
    """Write images/*.jpg + labelImg XML beside each, and metadata.csv; same cfg, same bytes."""
    _validate(cfg)
    shots = _plan(cfg)
    images = Path(cfg.out_dir) / "images"
    images.mkdir(parents=True, exist_ok=True)
    per_class = dict.fromkeys(cfg.classes, 0)
    from rich.progress import track  # only needed when generating

    rows = []
    for index, (who, side, k) in enumerate(track(shots, description="Synthesising hand photos", disable=not progress)):
        rng = np.random.default_rng([cfg.seed, 2, index])
        pixels, boxes = _render(cfg, _person(cfg, who), side == "right", rng)
        stem = f"P{who + 1:04d}_{side}_{k}"
        jpg = images / f"{stem}.jpg"
        Image.fromarray(pixels).save(jpg, "JPEG", quality=cfg.jpeg_quality)
        where = str(jpg.resolve()) if cfg.annotator_dir is None else f"{cfg.annotator_dir}/{jpg.name}"
        write_voc(
            images / f"{stem}.xml",
            VocAnnotation(
                folder="images",
                filename=jpg.name,
                path=where,
                width=cfg.image_width,
                height=cfg.image_height,
                depth=3,
                boxes=tuple(boxes),
            ),
        )
        for b in boxes:
            per_class[b.name] += 1
        rows.append([jpg.name, f"P{who + 1:04d}", f"{side}_palm", "expert"])
    keep = {f"{r[0].rsplit('.', 1)[0]}.{ext}" for r in rows for ext in ("jpg", "xml")}
    for f in images.iterdir():  # a smaller re-run must not leave old photos behind; only ours are touched
        if f.is_file() and _OUR_FILES.match(f.name) and f.name not in keep:
            f.unlink()
    with open(Path(cfg.out_dir) / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["filename", "patient_id", "body_site", "label_source"])
        writer.writerows(rows)
    return SynthSummary(len(rows), sum(per_class.values()), len({who for who, _, _ in shots}), per_class)
