"""Synthetic frontal chest radiographs, normal vs pneumonia (seed 001), saved as grey JPEGs.

Drawn as an attenuation map, the way a radiograph forms: soft tissue of the thorax, dark
air-filled lungs, the heart and mediastinum, spine, ribs, clavicles, vessels fanning out of the
hila, breast shadows; then pneumonia adds opacities inside the lungs — a lobar consolidation with
air bronchograms, patchy bronchopneumonia, or a faint interstitial pattern. Exposure, positioning,
inspiration, noise and the technician's L/R marker vary per film. Normal films carry the usual
look-alikes (prominent vessels, breast shadows, a basal atelectasis line) and some pneumonias are
faint, so a small CNN learns the task well but not perfectly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from lesionops.synth.render import (
    blur,
    branches,
    cloud,
    ellipse,
    grid,
    lines_layer,
    noise,
    rotate,
    smoothstep,
    text_layer,
)
from lesionops.synth.whole_image import Kind, Shot

Rng = np.random.Generator
CLASSES = ("normal", "pneumonia")
PRIORS = (0.35, 0.65)  # the Kaggle paediatric set is ~73 % pneumonia
FAINT_RATE = 0.07  # pneumonias barely visible on the film (only the lab tells)


def _anatomy(prng: Rng) -> dict[str, float]:
    """A patient's build: the same person looks alike on every film."""
    return {
        "body": prng.uniform(0.78, 0.94),
        "lung_w": prng.uniform(0.25, 0.31),
        "lung_h": prng.uniform(0.48, 0.58),
        "lung_y": prng.uniform(-0.1, -0.02),
        "heart": prng.uniform(0.19, 0.27),
        "female": float(prng.random() < 0.5),
        "vessels": prng.uniform(0.7, 1.3),
        "rib_gap": prng.uniform(0.95, 1.08),
    }


def _lungs(x: np.ndarray, y: np.ndarray, a: dict[str, float], insp: float) -> tuple[np.ndarray, list]:
    """Both lung fields (1 = aerated lung) and their (cx, cy, w, h) for placing findings."""
    fields, boxes = np.zeros(np.broadcast(x, y).shape, np.float32), []
    for side in (-1, 1):
        w = a["lung_w"] * (0.92 if side > 0 else 1.0)  # the heart takes room on the left (image right)
        cx, cy, h = side * (0.1 + w), a["lung_y"], a["lung_h"] * insp
        lung = ellipse(x, y, cx, cy, w, h, soft=0.08, power=2.3)
        lung = lung * smoothstep((cy + 0.82 * h - y) / 0.04 + 0.5 * (np.abs(x - cx) / w))  # diaphragm
        fields = np.maximum(fields, lung)
        boxes.append((cx, cy, w, h))
    return fields, boxes


def _ribs(h: int, w: int, a: dict[str, float], lung_y: float, lung_h: float) -> np.ndarray:
    """Posterior ribs as curved bands from the spine outwards, about ten a side."""
    lines, widths = [], []
    for side in (-1, 1):
        for k in range(10):
            y0 = lung_y - 0.95 * lung_h + k * 0.2 * lung_h * a["rib_gap"]
            pts = [(side * (0.05 + u), y0 - 0.3 * u + 0.75 * u * u) for u in np.linspace(0, 0.8, 9)]
            lines.append(pts)
            widths.append(0.03 * h)
    return blur(lines_layer(h, w, lines, widths), 0.01 * h)


def _vessels(rng: Rng, h: int, w: int, lung_boxes: list, strength: float) -> np.ndarray:
    """Pulmonary vessels branching out of each hilum, thinning towards the periphery."""
    segments = []
    for cx, cy, lw, _ in lung_boxes:
        side = 1 if cx > 0 else -1
        for _ in range(6):
            ang = math.pi / 2 - side * math.pi / 2 + side * rng.uniform(-1.1, 1.1)
            segments += branches(rng, (cx - side * 0.6 * lw, cy + 0.05), ang, 0.12, 4, 0.6)
    layer = lines_layer(h, w, segments, [max(1.0, 0.008 * h)] * len(segments))
    return blur(layer, 0.006 * h) * strength


def _pneumonia(
    rng: Rng, x: np.ndarray, y: np.ndarray, h: int, w: int, lungs: np.ndarray, lung_boxes: list
) -> np.ndarray:
    """Opacity added by the infection: lobar, patchy (bronchopneumonia) or interstitial."""
    kind = rng.choice(["lobar", "patchy", "interstitial"], p=[0.45, 0.4, 0.15])
    strength = rng.uniform(0.45, 1.0) * (0.2 if rng.random() < FAINT_RATE else 1.0)
    texture = 0.6 + 0.4 * smoothstep(noise(rng, h, w, 0.04 * h) * 0.5 + 0.5)
    if kind == "lobar":
        cx, cy, lw, lh = lung_boxes[int(rng.integers(2))]
        bx, by = cx + rng.uniform(-0.4, 0.4) * lw, cy + rng.uniform(0.0, 0.55) * lh
        blob = ellipse(
            x, y, bx, by, lw * rng.uniform(0.5, 0.9), lh * rng.uniform(0.3, 0.5), soft=0.5, angle=rng.uniform(-0.5, 0.5)
        )
        air = lines_layer(h, w, branches(rng, (bx, by - 0.1), math.pi / 2, 0.07, 3, 0.5), [max(1.0, 0.01 * h)] * 7)
        opacity = 0.3 * blob * texture - 0.08 * blur(air, 0.005 * h) * blob
    elif kind == "patchy":
        opacity = np.zeros_like(lungs)
        for _ in range(int(rng.integers(3, 9))):
            cx, cy, lw, lh = lung_boxes[int(rng.integers(2))]
            bx, by = cx + rng.uniform(-0.7, 0.7) * lw, cy + rng.uniform(-0.3, 0.75) * lh
            opacity += 0.24 * ellipse(
                x, y, bx, by, rng.uniform(0.05, 0.13), rng.uniform(0.04, 0.1), soft=1.2, angle=rng.uniform(0, math.pi)
            )
        opacity = opacity * cloud(rng, h, w, 0.03 * h, 0.6)
    else:
        lower = smoothstep((y - lung_boxes[0][1]) / 0.4 + 0.5)
        opacity = 0.1 * cloud(rng, h, w, 0.02 * h, 0.45) * lower + 0.05 * lower
    return strength * opacity * lungs


def _film(a: dict[str, float], label: str, size: tuple[int, int], rng: Rng) -> np.ndarray:
    """Attenuation map of one film (higher = whiter), before exposure and noise."""
    h, w = size
    x, y = grid(h, w)
    dx, dy = rng.normal(0, 0.05, 2)  # positioning and collimation differ from film to film
    zoom = rng.uniform(0.85, 1.12)
    x, y = (x - dx) / zoom, (y - dy) / zoom
    insp = rng.uniform(0.92, 1.06)  # depth of inspiration
    body = ellipse(x, y, 0, 0.2, a["body"], 1.15, soft=0.06, power=2.8)
    body = np.maximum(body, ellipse(x, y, 0, -0.95, 0.2, 0.4, soft=0.1))  # neck
    att = 0.06 + 0.46 * body
    lungs, boxes = _lungs(x, y, a, insp)
    att -= (0.3 - 0.06 * smoothstep((y - a["lung_y"]) / 0.8 + 0.5)) * lungs  # soft tissue over the bases
    lung_y, lung_h = a["lung_y"], a["lung_h"] * insp
    heart = ellipse(x, y, 0.1, lung_y + 0.62 * lung_h, a["heart"] * 1.35, a["heart"] * 0.9, soft=0.5, angle=-0.35)
    att += 0.22 * heart
    mediastinum = (
        smoothstep((0.1 - np.abs(x + 0.01)) / 0.04 + 0.5)
        * smoothstep((y + 0.9) / 0.2)
        * smoothstep((lung_y + 0.95 * lung_h - y) / 0.15)
    )
    att += 0.18 * mediastinum * body
    spine = smoothstep((0.06 - np.abs(x)) / 0.02 + 0.5) * body
    att += spine * (0.05 + 0.03 * np.cos(y * 2 * math.pi / 0.13))
    att += 0.1 * ellipse(x, y, -0.06, lung_y - 0.55 * lung_h, 0.06, 0.05, soft=0.5)  # aortic knob
    att += 0.08 * _ribs(h, w, a, lung_y, lung_h) * body
    clav = [[(s * 0.08, -0.66 + dy), (s * 0.55, -0.76 + dy)] for s in (-1, 1)]
    att += 0.12 * blur(lines_layer(h, w, clav, [0.04 * h, 0.04 * h]), 0.01 * h)
    strength = a["vessels"] * (1.6 if label == "normal" and rng.random() < 0.15 else 1.0)
    att += 0.07 * _vessels(rng, h, w, boxes, strength) * lungs
    if a["female"]:
        att += 0.06 * sum(ellipse(x, y, s * 0.42, lung_y + 0.75 * lung_h, 0.3, 0.22, soft=0.4) for s in (-1, 1))
    if label == "pneumonia":
        att += _pneumonia(rng, x, y, h, w, lungs, boxes)
    elif rng.random() < 0.1:  # plate atelectasis: a thin basal line, a classic look-alike
        base = lung_y + 0.6 * lung_h
        seg = [[(s * 0.25, base), (s * 0.45, base + rng.uniform(-0.05, 0.05))] for s in (-1, 1)]
        seg = seg[: int(rng.integers(1, 3))]
        att += 0.08 * blur(lines_layer(h, w, seg, [0.012 * h] * len(seg)), 0.005 * h)
    return rotate(att, rng.normal(0, 2.5), fill=0.06)


def _expose(att: np.ndarray, rng: Rng) -> np.ndarray:
    """Detector response: contrast, brightness, gamma, quantum mottle and a little unsharpness."""
    h = att.shape[0]
    img = (att - 0.04) * rng.uniform(1.3, 1.8) + rng.uniform(-0.05, 0.08)
    img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
    img = blur(img, rng.uniform(0.3, 1.0) * h / 256)
    img = img + rng.normal(0, rng.uniform(0.01, 0.03), img.shape).astype(np.float32)
    if rng.random() < 0.7:  # the technician's lead marker
        left = rng.random() < 0.5
        img = np.maximum(
            img, 0.95 * text_layer(h, img.shape[1], "L" if left else "R", (0.6 if left else -0.85, -0.9), 0.07 * h)
        )
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def write_chest_xray(path: Path, shot: Shot, size: tuple[int, int], prng: Rng, rng: Rng) -> None:
    """Render one film and save it as an 8-bit grey JPEG (mode L), as the Kaggle set ships."""
    pixels = _expose(_film(_anatomy(prng), shot.label, size, rng), rng)
    Image.fromarray(pixels, mode="L").save(path, "JPEG", quality=92)


KIND = Kind(
    name="chest_xray",
    classes=CLASSES,
    priors=PRIORS,
    suffix=".jpeg",
    tag="cxr",
    per_patient=(1, 2),
    body_sites=("chest",),
    label_source={"normal": "radiologist", "pneumonia": "radiologist+lab"},
    write=write_chest_xray,
)
