"""Shifted image streams: the synthetic skin photographs of seed 002 with one named thing changed.

For drift tests and benchmarks/drift.py (and `lesionops synth --shift`). Image i of a stream is
planned and rendered by the skin generator itself (lesionops.synth.skin: same patients, lesions and
seeds), so a shifted stream is the unshifted one with exactly the shift applied. Severity s ≥ 0
scales each shift; s = 1 is a change a clinician would notice:

| shift          | s = 1                                                                     | moves            |
|----------------|---------------------------------------------------------------------------|------------------|
| lighting       | exposure × 0.65 (± 4 % per image) and a 30 % vignette: a dim room          | brightness, colour |
| blur           | Gaussian blur of radius 2 px per 480 px of short side: out of focus         | sharpness        |
| skin_tone      | only patients darker than the middle Fitzpatrick-like tone (s < 1: lighter-skinned patients kept with probability 1 − s) | colour, brightness |
| camera         | 1.5 × the resolution, a warm cast (red + 10 %, blue − 10 %), JPEG quality 40 | size, colour, sharpness |
| class_prior    | the class priors inverted (rare diseases common): p' = (1 − s) p + s q, q ∝ 1 / p | predicted classes |
| wrong_modality | 20 % × s of the images are grey chest films (lesionops.synth.chest_xray)  | saturation (an acquisition alert) |

Everything derives from the seed: the plan and image i exactly as the skin generator would make
them, the shift's per-image draws from (seed, 9, i), the wrong-modality picks from (seed, 8, i).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from components.common.errors import ConfigError
from lesionops.synth import skin
from lesionops.synth.chest_xray import write_chest_xray
from lesionops.synth.whole_image import Shot

SHIFTS = ("none", "lighting", "blur", "skin_tone", "camera", "class_prior", "wrong_modality")
DARK_TONE = float((skin.SKIN_TONES[2].mean() + skin.SKIN_TONES[3].mean()) / 2)  # mean RGB of "darker" skin
XRAY_SHARE = 0.2  # wrong_modality at severity 1


@dataclass(frozen=True)
class ShiftConfig:
    """What to generate: `n` images of the skin stream under `shift` at `severity`."""

    shift: str = "none"
    severity: float = 1.0
    n: int = 200
    seed: int = 0
    width: int = 640
    height: int = 480
    classes: tuple[str, ...] = skin.DEFAULT_CLASSES
    class_priors: tuple[float, ...] | None = None  # None: the generator's thesis-like imbalance
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        checks = [
            (self.shift in SHIFTS, f"shift must be one of {list(SHIFTS)}, got {self.shift!r}"),
            (math.isfinite(self.severity) and self.severity >= 0, f"severity must be ≥ 0, got {self.severity}"),
            (self.n >= 1, f"n must be ≥ 1, got {self.n}"),
            (1 <= self.jpeg_quality <= 100, f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ConfigError(f"synth shift: {problem}")


@dataclass(frozen=True)
class StreamImage:
    """One uploaded file: JPEG bytes, what it shows and, for skin photos, the first lesion's box."""

    data: bytes
    label: str  # a disease, or "chest_xray" for a wrong-modality image
    modality: str  # skin | chest_xray
    patient: str
    box: tuple[int, int, int, int] | None  # pixels, (x1, y1, x2, y2) half-open, as PIL's crop takes

    def image(self) -> Image.Image:
        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img


def _priors(cfg: ShiftConfig) -> tuple[float, ...]:
    base = np.asarray(skin._validate(_skin_cfg(cfg, 1, None)), dtype=float)
    if cfg.shift != "class_prior":
        return tuple(base)
    s = min(cfg.severity, 1.0)
    inverse = np.where(base > 0, 1.0 / np.maximum(base, 1e-12), 0.0)
    return tuple((1 - s) * base + s * inverse / inverse.sum())


def _size(cfg: ShiftConfig) -> tuple[int, int]:
    if cfg.shift != "camera":
        return cfg.width, cfg.height
    f = 1 + 0.5 * cfg.severity
    return 2 * round(cfg.width * f / 2), 2 * round(cfg.height * f / 2)


def _skin_cfg(cfg: ShiftConfig, n: int, priors: tuple[float, ...] | None) -> skin.SynthConfig:
    w, h = _size(cfg)
    return skin.SynthConfig(
        out_dir=Path("."),
        n_images=n,
        seed=cfg.seed,
        image_width=w,
        image_height=h,
        classes=cfg.classes,
        class_priors=priors if priors is not None else cfg.class_priors,
    )


def darker_skinned(seed: int, patient: int) -> bool:
    """Whether patient `patient` (0-based; `StreamImage.patient` "P0001" is 0) of the streams with
    `seed` has a skin tone darker than the middle one: the patients a skin_tone shift always keeps.
    The generator's own truth, for benchmarks that ask what a perfect tone measurement would see."""
    look = skin._patient_look(skin.SynthConfig(out_dir=Path("."), seed=seed), patient)
    return float(look[0].mean()) < DARK_TONE


def _keep_patient(cfg: ShiftConfig, patient: int) -> bool:
    """skin_tone: darker-skinned patients always, the others with probability 1 - severity."""
    if darker_skinned(cfg.seed, patient):
        return True
    return bool(np.random.default_rng([cfg.seed, 7, patient]).random() >= min(cfg.severity, 1.0))


def _shots(cfg: ShiftConfig) -> tuple[skin.SynthConfig, list]:
    """The skin generator's own plan; for skin_tone, the patients the shifted clinic sees."""
    priors = _priors(cfg)
    planned = cfg.n
    while True:
        scfg = _skin_cfg(cfg, planned, priors)
        shots = skin._plan(scfg, skin._validate(scfg))
        if cfg.shift == "skin_tone":
            keep = {p: _keep_patient(cfg, p) for p in {s.patient for s in shots}}
            shots = [s for s in shots if keep[s.patient]]
        if len(shots) >= cfg.n:
            return scfg, shots[: cfg.n]
        planned = planned * 3 + 20


def _post(cfg: ShiftConfig, pixels: np.ndarray, index: int) -> tuple[Image.Image, int]:
    """The shift applied to a rendered photo; returns the image and the JPEG quality to save at."""
    rng = np.random.default_rng([cfg.seed, 9, index])
    s, quality = cfg.severity, cfg.jpeg_quality
    img = pixels.astype(np.float32)
    h, w = img.shape[:2]
    if cfg.shift == "lighting":
        y, x = np.mgrid[-1 : 1 : complex(0, h), -1 : 1 : complex(0, w)]
        vignette = 1 - 0.3 * s * (x * x + y * y) / 2
        img = img * (1 - 0.35 * s) * (1 + rng.normal(0, 0.04)) * vignette[..., None]
    elif cfg.shift == "camera":
        img = img * np.array([1 + 0.1 * s, 1.0, max(0.0, 1 - 0.1 * s)], dtype=np.float32)
        quality = int(np.clip(round(cfg.jpeg_quality - 50 * s), 5, 100))
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if cfg.shift == "blur" and s > 0:
        out = out.filter(ImageFilter.GaussianBlur(2.0 * s * min(h, w) / 480 * rng.uniform(0.8, 1.2)))
    return out, quality


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _xray(cfg: ShiftConfig, index: int) -> StreamImage:
    """A grey chest film where a skin photo was expected (a wrong-modality upload)."""
    buf = io.BytesIO()
    side = min(cfg.width, cfg.height)
    write_chest_xray(
        buf,
        Shot(index, index, "normal", 1, 1, "cxr"),
        (side, side),  # type: ignore[arg-type]
        np.random.default_rng([cfg.seed, 10, index]),
        np.random.default_rng([cfg.seed, 11, index]),
    )
    return StreamImage(buf.getvalue(), "chest_xray", "chest_xray", f"X{index + 1:04d}", None)


def stream(cfg: ShiftConfig) -> Iterator[StreamImage]:
    """The `cfg.n` images of the stream, in order (lazily: one rendered at a time)."""
    scfg, shots = _shots(cfg)
    share = XRAY_SHARE * cfg.severity if cfg.shift == "wrong_modality" else 0.0
    for i, shot in enumerate(shots):
        if share and np.random.default_rng([cfg.seed, 8, i]).random() < share:
            yield _xray(cfg, i)
            continue
        pixels, boxes = skin._render(scfg, shot)
        img, quality = _post(cfg, pixels, i)
        b = boxes[0] if boxes else None
        box = None if b is None else (int(b.xmin) - 1, int(b.ymin) - 1, int(b.xmax), int(b.ymax))
        yield StreamImage(_jpeg(img, quality), shot.label, "skin", f"P{shot.patient + 1:04d}", box)


def shifted_images(shift: str, severity: float, n: int, seed: int = 0, **options: object) -> list[StreamImage]:
    """`n` images under `shift` at `severity` (options: width, height, classes, class_priors, jpeg_quality)."""
    return list(stream(ShiftConfig(shift, severity, n, seed, **options)))  # type: ignore[arg-type]


def write_stream(out_dir: Path, cfg: ShiftConfig) -> dict[str, object]:
    """Write `<out>/images/NNNNN.jpg` (the upload order), `stream.csv` (file, label, modality, patient,
    box) and `shift.json` (the config); returns counts per label."""
    images = Path(out_dir) / "images"
    images.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with open(Path(out_dir) / "stream.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "label", "modality", "patient", "x1", "y1", "x2", "y2"])
        for i, item in enumerate(stream(cfg)):
            name = f"{i:05d}.jpg"
            (images / name).write_bytes(item.data)
            writer.writerow([f"images/{name}", item.label, item.modality, item.patient, *(item.box or ("",) * 4)])
            counts[item.label] = counts.get(item.label, 0) + 1
    doc = {**asdict(cfg), "classes": list(cfg.classes), "per_label": counts}
    (Path(out_dir) / "shift.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc
