"""DICOM → the 8-bit RGB image every other stage expects, and nothing that identifies a patient.

Radiology images (chest X-ray, dermoscopy exports) arrive as DICOM. Stored values are not display
values: they need the modality rescale (slope/intercept), a VOI window, and MONOCHROME1 images are
stored inverted (0 = white). We apply exactly those three steps and hand back pixels plus a short
whitelist of technical tags: the header also holds PatientName/ID/BirthDate, which must never
reach a manifest, a report or MLflow, so we never copy anything that is not on the whitelist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from components.common.errors import DataError
from components.common.images import IMAGE_CORRUPT

# Technical, non-identifying fields; anything else in the header stays in the header.
SAFE_TAGS = (
    "Modality",
    "Rows",
    "Columns",
    "PhotometricInterpretation",
    "BitsStored",
    "Manufacturer",  # the scanner, for results per camera (evaluate_model subgroups)
    "ManufacturerModelName",
)


@dataclass(frozen=True)
class DicomImage:
    image: Image.Image  # 8-bit RGB, display-ready
    tags: dict[str, Any] = field(default_factory=dict)  # only SAFE_TAGS


def _first(value: Any) -> float | None:
    """WindowCenter/Width may be multi-valued (several presets); the first is the default one."""
    if value is None:
        return None
    try:
        return float(value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value)
    except (TypeError, ValueError, IndexError):
        return None


def _window(values: np.ndarray, center: float | None, width: float | None) -> np.ndarray:
    """Map to 0..1 with the DICOM linear VOI window (PS3.3 C.11.2.1.2), else min-max."""
    if center is not None and width is not None and width > 1:
        low = center - 0.5 - (width - 1) / 2
        return np.clip((values - low) / (width - 1), 0.0, 1.0)
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def _to_rgb(ds: Any, path: Path) -> Image.Image:
    pixels = np.asarray(ds.pixel_array, dtype=np.float64)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if pixels.ndim == 3 and pixels.shape[-1] == 3:  # RGB/YBR_FULL stored already as colour
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB").astype(np.float64)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")
    if pixels.ndim != 2:
        raise DataError(path, f"unsupported DICOM pixel array shape {pixels.shape} (multi-frame?)", code=IMAGE_CORRUPT)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    values = pixels * slope + float(ds.get("RescaleIntercept", 0) or 0)
    scaled = _window(values, _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth")))
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    grey = np.round(scaled * 255.0).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def read_dicom(path: Path) -> DicomImage:
    """Decode one DICOM file; any unreadable header or pixel data is IMAGE_CORRUPT."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
        image = _to_rgb(ds, path)
    except DataError:
        raise
    except (
        InvalidDicomError,
        AttributeError,
        KeyError,
        ValueError,
        OSError,
        TypeError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise DataError(path, f"not a readable DICOM image ({type(exc).__name__}: {exc})", code=IMAGE_CORRUPT) from exc
    tags = {name: _plain(ds.get(name)) for name in SAFE_TAGS if name in ds}
    return DicomImage(image=image, tags=tags)


def _plain(value: Any) -> Any:
    """pydicom value types (IS, DS, PersonName…) → int/float/str so they serialise anywhere."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)
