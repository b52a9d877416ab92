"""Whole-image datasets (seeds 001, 003, 004): one diagnosis per image, one folder per class.

The layout is the one these projects shipped (Kaggle chest X-ray, the CT platform, the monkeypox
skin-lesion set): `<out>/<class>/<file>` with the folder as the label, which `ingest_data` reads
with `layout: folder_per_class`, plus `metadata.csv` naming each file's patient so splits stay by
patient. A *kind* (chest_xray, ct, monkeypox) knows its taxonomy and how to draw and save one
image; this module plans patients and labels and writes the files. Everything derives from the
seed: the plan from (seed, 0), a patient's look from (seed, 1, patient), an image from
(seed, 2, index), so the same config gives the same bytes.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.errors import ConfigError

Rng = np.random.Generator


@dataclass(frozen=True)
class Shot:
    """One image to render, decided up front so rendering order cannot change the data."""

    index: int
    patient: int
    label: str
    k: int  # 1-based number of this image among its patient's
    n: int  # how many images this patient has
    tag: str  # file-name tag of the kind: cxr, slice, photo

    @property
    def patient_id(self) -> str:
        return f"P{self.patient + 1:04d}"

    @property
    def stem(self) -> str:
        return f"{self.patient_id}_{self.tag}{self.k}"


# write(path, shot, (height, width), patient rng, image rng): render one image and save it.
Writer = Callable[[Path, Shot, tuple[int, int], Rng, Rng], None]


@dataclass(frozen=True)
class Kind:
    """What a whole-image generator knows: its taxonomy, priors, file type and how to draw."""

    name: str
    classes: tuple[str, ...]
    priors: tuple[float, ...]
    suffix: str  # .jpeg | .png | .dcm
    tag: str
    per_patient: tuple[int, int]  # images per patient, inclusive range
    body_sites: tuple[str, ...]
    label_source: dict[str, str]  # how the diagnosis was confirmed, per class
    write: Writer


@dataclass(frozen=True)
class WholeImageConfig:
    """What to generate; None means the kind's own taxonomy, priors and images per patient."""

    out_dir: Path
    n_images: int = 400
    seed: int = 7
    image_width: int = 256
    image_height: int = 256
    classes: tuple[str, ...] | None = None
    class_priors: tuple[float, ...] | None = None
    per_patient: tuple[int, int] | None = None


@dataclass(frozen=True)
class WholeImageSummary:
    n_images: int
    n_patients: int
    per_class_images: dict[str, int]


def _settings(kind: Kind, cfg: WholeImageConfig) -> tuple[tuple[str, ...], np.ndarray, tuple[int, int]]:
    """Fail before touching the disk with a message naming the field; returns classes, priors, range."""
    classes = cfg.classes or kind.classes
    priors = (
        cfg.class_priors
        if cfg.class_priors is not None
        else tuple(kind.priors[kind.classes.index(c)] if c in kind.classes else 0.0 for c in classes)
    )
    lo, hi = cfg.per_patient or kind.per_patient
    checks = [
        (cfg.n_images >= 1, f"n_images must be >= 1, got {cfg.n_images}"),
        (cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}"),
        (
            min(cfg.image_width, cfg.image_height) >= 32,
            f"image size must be at least 32x32, got {cfg.image_width}x{cfg.image_height}",
        ),
        (
            len(classes) > 0 and len(set(classes)) == len(classes),
            f"classes must be non-empty and unique, got {classes}",
        ),
        (
            set(classes) <= set(kind.classes),
            f"the {kind.name} generator draws only {list(kind.classes)}, not {sorted(set(classes) - set(kind.classes))}",
        ),
        (len(priors) == len(classes), f"class_priors has {len(priors)} values for {len(classes)} classes"),
        (
            all(math.isfinite(p) and p >= 0 for p in priors) and sum(priors) > 0,
            f"class_priors must be finite, >= 0 and not all zero, got {tuple(priors)}",
        ),
        (1 <= lo <= hi, f"need 1 <= images per patient min <= max, got {lo}..{hi}"),
    ]
    for ok, problem in checks:
        if not ok:
            raise ConfigError(f"synth config ({kind.name}): {problem}")
    p = np.asarray(priors, dtype=np.float64)
    return classes, p / p.sum(), (lo, hi)


def plan(kind: Kind, cfg: WholeImageConfig) -> list[Shot]:
    """Patients with 1..n images each; diagnoses by largest quota deficit (plus a little noise) so
    that even tiny datasets match the priors in images, not only in expectation."""
    classes, p, (lo, hi) = _settings(kind, cfg)
    rng = np.random.default_rng([cfg.seed, 0])
    assigned, total, shots, patient = np.zeros(len(p)), 0, [], 0
    while total < cfg.n_images:
        size = min(int(rng.integers(lo, hi + 1)), cfg.n_images - total)
        deficit = p * (total + size) - assigned + rng.uniform(0, 0.5, len(p))
        label = classes[int(np.argmax(np.where(p > 0, deficit, -np.inf)))]
        assigned[classes.index(label)] += size
        shots += [Shot(total + k, patient, label, k + 1, size, kind.tag) for k in range(size)]
        total += size
        patient += 1
    return shots


def _remove_stale(root: Path, kind: Kind, keep: set[str]) -> None:
    """A re-run with fewer images (or other classes) must not leave old ones behind; only files
    with our own naming pattern are touched, never a user's."""
    ours = re.compile(rf"^P\d{{4,}}_{kind.tag}\d+{re.escape(kind.suffix)}$")
    for folder in (d for d in root.iterdir() if d.is_dir()):
        stale = [
            f for f in folder.iterdir() if f.is_file() and ours.match(f.name) and f"{folder.name}/{f.name}" not in keep
        ]
        for f in stale:
            f.unlink()
        if stale and not any(folder.iterdir()):  # a class this run has no image of
            folder.rmdir()


def generate_whole_image_dataset(kind: Kind, cfg: WholeImageConfig, progress: bool = True) -> WholeImageSummary:
    """Write `<out>/<class>/<patient>_<tag><k><suffix>` and metadata.csv; same cfg, same bytes."""
    shots = plan(kind, cfg)
    root = Path(cfg.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    size = (cfg.image_height, cfg.image_width)
    from rich.progress import track  # only needed when generating

    for shot in track(shots, description=f"Synthesising {kind.name} images", disable=not progress):
        path = root / shot.label / f"{shot.stem}{kind.suffix}"
        path.parent.mkdir(exist_ok=True)
        kind.write(
            path,
            shot,
            size,
            np.random.default_rng([cfg.seed, 1, shot.patient]),
            np.random.default_rng([cfg.seed, 2, shot.index]),
        )
    _remove_stale(root, kind, {f"{s.label}/{s.stem}{kind.suffix}" for s in shots})
    site_rng = np.random.default_rng([cfg.seed, 3])
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["filename", "patient_id", "body_site", "label_source"])
        for s in shots:
            site = str(site_rng.choice(kind.body_sites))
            writer.writerow([f"{s.stem}{kind.suffix}", s.patient_id, site, kind.label_source.get(s.label, "")])
    per_class = Counter(s.label for s in shots)
    classes = cfg.classes or kind.classes
    return WholeImageSummary(len(shots), len({s.patient for s in shots}), {c: per_class.get(c, 0) for c in classes})
