"""Synthetic axial chest CT slices as DICOM: normal / bacterial / viral pneumonia (seed 003).

Each file is a real CT Image Storage object in Hounsfield units: 12-bit stored values with
RescaleSlope/Intercept, a lung and a mediastinal window (the reader applies the first), the
patient's pseudonymous id in PatientID/PatientName (identifying tags that ingestion must never
copy). A patient is a short series of slices at different heights, so slices of one scan share
build, series UIDs and disease pattern, which is why splits must be by patient.

Findings follow the radiology teaching the seed's classes rest on: bacterial pneumonia is a
unilateral lobar consolidation (soft-tissue density with air bronchograms), sometimes patchy
bronchopneumonia; viral pneumonia is bilateral, peripheral ground-glass opacity, sometimes with
crazy paving or consolidation inside it. Normal scans include dependent atelectasis, the classic
ground-glass look-alike, so the classes overlap as they do in practice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lesionops.synth.render import blur, branches, cloud, ellipse, grid, lines_layer, noise, smoothstep
from lesionops.synth.whole_image import Kind, Shot

Rng = np.random.Generator
CLASSES = ("normal", "bacterial_pneumonia", "viral_pneumonia")
PRIORS = (1 / 3, 1 / 3, 1 / 3)  # the seed's Kaggle set: ~2,000 images per class
AIR, FAT, SOFT, LUNG, BONE = -1000.0, -100.0, 40.0, -860.0, 700.0
WINDOWS = {"LUNG": (-600, 1500), "MEDIASTINUM": (40, 400)}  # first = default, as DICOM readers take it
FOV_MM = 350.0


def _anatomy(prng: Rng) -> dict[str, float]:
    """A patient's build and disease pattern, shared by every slice of the scan."""
    return {
        "body_a": prng.uniform(0.78, 0.92),
        "body_b": prng.uniform(0.56, 0.68),
        "fat": prng.uniform(0.03, 0.09),
        "lung_a": prng.uniform(0.27, 0.33),
        "lung_b": prng.uniform(0.38, 0.46),
        "heart": prng.uniform(0.18, 0.25),
        "side": float(prng.choice([-1, 1])),
        "severity": prng.uniform(0.5, 1.0),
        "style": prng.random(),
        "sex": float(prng.random() < 0.5),
        "uid": float(prng.integers(2**40)),
    }


def _vessels(rng: Rng, h: int, w: int, n: int) -> np.ndarray:
    """Vessels cut across: small round bright dots, thicker near the hila."""
    layer = Image.new("L", (w, h))
    draw = ImageDraw.Draw(layer)
    for _ in range(n):
        px, py = rng.uniform(0, w), rng.uniform(0, h)
        r = max(0.5, rng.uniform(0.002, 0.007) * w * (1.6 - abs(px / w - 0.5) * 1.6))
        draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    return np.asarray(layer, dtype=np.float32) / 255


def _body(x: np.ndarray, y: np.ndarray, a: dict[str, float], z: float) -> tuple[np.ndarray, np.ndarray]:
    """HU of the body wall, mediastinum, spine and ribs, and the lung mask at height z (0 = apex)."""
    ba, bb = a["body_a"], a["body_b"]
    body = ellipse(x, y, 0, 0.05, ba, bb, soft=0.02, power=2.2)
    inner = ellipse(x, y, 0, 0.05, ba - a["fat"], bb - a["fat"], soft=0.05, power=2.2)
    hu = AIR + (FAT - AIR) * body + (SOFT - FAT) * inner
    size = 0.55 + 0.45 * math.sin(math.pi * (0.12 + 0.8 * z))  # lungs are largest mid-chest
    lungs = np.zeros_like(hu)
    for side in (-1, 1):
        la = a["lung_a"] * size * (0.9 if side > 0 else 1.0)
        lungs = np.maximum(lungs, ellipse(x, y, side * (0.13 + la), 0.04, la, a["lung_b"] * size, soft=0.06, power=2.3))
    heart_r = a["heart"] * smoothstep(np.asarray((z - 0.35) / 0.3)).item()
    heart = ellipse(x, y, 0.08, -0.08, heart_r * 1.2 + 1e-3, heart_r + 1e-3, soft=0.2, angle=0.5)
    media = ellipse(x, y, 0, -0.05, 0.13, 0.4, soft=0.2)
    aorta = ellipse(x, y, 0.1, 0.3, 0.055, 0.055, soft=0.15)
    lungs = lungs * (1 - np.maximum(np.maximum(heart, media), aorta))
    spine = ellipse(x, y, 0, 0.43, 0.11, 0.1, soft=0.1)
    canal = ellipse(x, y, 0, 0.57, 0.045, 0.04, soft=0.2)
    hu = hu + (BONE - SOFT) * np.clip(spine + 0.6 * ellipse(x, y, 0, 0.66, 0.025, 0.07, soft=0.2), 0, 1)
    hu = hu + (BONE * 0.4) * (spine - ellipse(x, y, 0, 0.43, 0.085, 0.075, soft=0.2)).clip(0, 1)
    hu = hu - (BONE - 20) * canal
    for side in (-1, 1):
        for ang in np.linspace(0.15, 1.45, 6) * math.pi / 2 + (z * 0.2):
            rx, ry = side * (ba - a["fat"] - 0.05) * math.sin(ang), 0.05 + (bb - a["fat"] - 0.05) * math.cos(ang)
            hu = hu + (BONE - SOFT) * ellipse(x, y, rx, ry, 0.03, 0.022, soft=0.3, angle=ang)
    hu = hu * (1 - lungs) + LUNG * lungs
    return hu, lungs


@dataclass(frozen=True)
class _Slice:
    """Where things are on one slice: normalised coordinates and the aerated-lung mask."""

    x: np.ndarray
    y: np.ndarray
    lungs: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.lungs.shape[0], self.lungs.shape[1]


def _bacterial(rng: Rng, s: _Slice, a: dict[str, float], hu: np.ndarray) -> np.ndarray:
    """One lung: a lobe consolidated behind its fissure with air bronchograms, or (a quarter of
    patients) patchy bronchopneumonia around the airways."""
    (h, w), side, sev = s.size, a["side"], a["severity"] * rng.uniform(0.8, 1.1)
    if a["style"] < 0.75:
        ang = rng.uniform(0.2, 1.2)  # fissure orientation; the consolidated lobe lies posterior
        px, py = side * rng.uniform(0.3, 0.5), rng.uniform(-0.15, 0.1)
        d = (s.y - py) * math.cos(ang) + side * (s.x - px) * math.sin(ang)
        region = smoothstep(d / 0.03 + 0.5) * s.lungs * (s.x * side > 0.1)
        tree = branches(rng, (side * 0.25, py), math.pi / 2 - side * 0.7, 0.12, 5, 0.45)
        air = blur(lines_layer(h, w, tree, [max(1.0, 0.006 * w)] * len(tree)), 0.002 * w)
        return hu + (SOFT - 20 + (LUNG - SOFT) * 0.8 * air - hu) * region * sev
    patches = np.zeros_like(s.lungs)
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = side * rng.uniform(0.2, 0.6), rng.uniform(-0.25, 0.35)
        patches = np.maximum(
            patches, ellipse(s.x, s.y, cx, cy, rng.uniform(0.05, 0.1), rng.uniform(0.05, 0.1), soft=0.8)
        )
    return hu + (SOFT - 40 - hu) * patches * cloud(rng, h, w, 0.03 * h, 0.7) * s.lungs * sev


def _viral(rng: Rng, s: _Slice, a: dict[str, float], hu: np.ndarray) -> np.ndarray:
    """Both lungs: peripheral, posterior ground glass (vessels still show through), some with
    crazy paving, some organising into consolidation."""
    (h, w), sev = s.size, a["severity"] * rng.uniform(0.8, 1.1)
    ggo = np.zeros_like(s.lungs)
    for _ in range(int(rng.integers(3, 8))):
        side, ang = float(rng.choice([-1, 1])), rng.uniform(-0.3, 1.8)  # subpleural
        cx, cy = side * (0.35 + 0.22 * math.cos(ang)), 0.04 + 0.3 * math.sin(ang)
        ggo = np.maximum(ggo, ellipse(s.x, s.y, cx, cy, rng.uniform(0.06, 0.14), rng.uniform(0.05, 0.12), soft=0.7))
    ggo = ggo * (0.7 + 0.3 * smoothstep(noise(rng, h, w, 0.02 * h) * 0.5 + 0.5)) * s.lungs
    out = hu + (-480.0 - hu) * ggo * sev
    if a["style"] < 0.3:  # crazy paving: septal lines over the ground glass
        out = out + 250 * cloud(rng, h, w, 0.012 * h, 0.3) * (1 - cloud(rng, h, w, 0.012 * h, 0.7)) * ggo
    if a["style"] > 0.8:  # organising pneumonia: consolidation inside the ground glass
        out = out + (SOFT - out) * ggo * cloud(rng, h, w, 0.04 * h, 0.2)
    return out


def _normal(rng: Rng, s: _Slice, a: dict[str, float], hu: np.ndarray) -> np.ndarray:
    """Healthy lungs; a fifth show dependent atelectasis, the classic ground-glass look-alike."""
    if rng.random() < 0.2:
        return hu + (-550.0 - hu) * smoothstep((s.y - 0.25) / 0.12) * s.lungs * rng.uniform(0.3, 0.7)
    return hu


_FINDINGS = {"normal": _normal, "bacterial_pneumonia": _bacterial, "viral_pneumonia": _viral}


def _slice_hu(a: dict[str, float], label: str, size: tuple[int, int], z: float, rng: Rng) -> np.ndarray:
    h, w = size
    x, y = grid(h, w)
    zoom = rng.uniform(0.9, 1.1)  # the reconstruction field of view varies by scanner and patient
    x, y = (x - rng.normal(0, 0.03)) / zoom, (y - rng.normal(0, 0.03)) / zoom
    hu, lungs = _body(x, y, a, z)
    hu = hu + (SOFT - LUNG) * _vessels(rng, h, w, int(300 * (h * w) ** 0.5 / 256)) * lungs
    hu = hu + 25 * noise(rng, h, w, 0.05 * h) * lungs  # lung parenchyma is not uniform
    hu = _FINDINGS[label](rng, _Slice(x, y, lungs), a, hu)
    table_y = 0.05 + a["body_b"] + 0.1
    hu = hu + 300 * smoothstep((0.015 - np.abs(y - table_y - 0.15 * x * x)) / 0.01 + 0.5)
    hu = blur(hu, 0.6 * w / 256) + rng.normal(0, rng.uniform(10, 25), hu.shape).astype(np.float32)
    return hu


def write_ct(path: Path, shot: Shot, size: tuple[int, int], prng: Rng, rng: Rng) -> None:
    """Render one slice and save it as a CT Image Storage DICOM file (explicit VR little endian)."""
    a = _anatomy(prng)
    z = 0.2 + 0.65 * (shot.k - 0.5) / shot.n + rng.uniform(-0.05, 0.05)
    hu = _slice_hu(a, shot.label, size, float(np.clip(z, 0, 1)), rng)
    stored = np.clip(np.round(hu + 1024), 0, 4095).astype(np.uint16)
    _save_dicom(path, stored, shot, a, z)


def _save_dicom(path: Path, stored: np.ndarray, shot: Shot, a: dict[str, float], z: float) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    def uid(*parts: object) -> str:  # deterministic: the same patient and slice, the same UIDs
        return generate_uid(entropy_srcs=["lesionops-synth-ct", str(int(a["uid"])), *map(str, parts)])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = uid("sop", shot.k)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.FrameOfReferenceUID = uid("frame")
    ds.Modality, ds.Manufacturer, ds.BodyPartExamined = "CT", "LesionOps synthetic", "CHEST"
    ds.PatientID, ds.PatientName = shot.patient_id, f"SYNTHETIC^{shot.patient_id}"
    ds.PatientSex, ds.PatientBirthDate = ("F" if a["sex"] else "M"), ""
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20200315"
    ds.StudyDescription, ds.SeriesDescription = "CHEST CT", "Chest w/o contrast 5mm"
    ds.SeriesNumber, ds.InstanceNumber = 2, shot.k
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.KVP, ds.ConvolutionKernel, ds.SliceThickness = 120, "LUNG", 5.0
    rows, cols = stored.shape
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [round(FOV_MM / rows, 4), round(FOV_MM / cols, 4)]
    location = round(-300.0 * z, 2)
    ds.ImagePositionPatient = [-FOV_MM / 2, -FOV_MM / 2, location]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = location
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter = [c for c, _ in WINDOWS.values()]
    ds.WindowWidth = [wd for _, wd in WINDOWS.values()]
    ds.WindowCenterWidthExplanation = list(WINDOWS)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


KIND = Kind(
    name="ct",
    classes=CLASSES,
    priors=PRIORS,
    suffix=".dcm",
    tag="slice",
    per_patient=(2, 4),
    body_sites=("chest",),
    label_source={"normal": "radiologist", "bacterial_pneumonia": "culture", "viral_pneumonia": "pcr"},
    write=write_ct,
)
