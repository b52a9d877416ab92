"""Image probing and decoding with one consistent rule for EXIF orientation.

labelImg shows a photo as stored (Qt does not apply EXIF orientation when it loads the bytes), so
its boxes live in the *stored* pixel frame. Every stage therefore crops in the stored frame and
records the orientation tag so that later checks can warn about rotated photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from components.common.errors import DataError

EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    mode: str
    format: str
    orientation: int


def probe(path: Path) -> ImageInfo:
    """Size, mode, format and EXIF orientation, after proving the pixel data decodes.

    Truncated JPEGs have a perfect header, so we decode; JPEGs at 1/8 scale (`draft`), which
    still reads every byte of the entropy-coded data but costs a fraction of a full decode.
    """
    try:
        with Image.open(path) as img:
            orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
            info = ImageInfo(img.width, img.height, img.mode, img.format or "", orientation)
            if img.format == "JPEG":
                img.draft(img.mode, (max(img.width // 8, 1), max(img.height // 8, 1)))
            img.load()
            return info
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(path, f"not a readable image ({exc})") from exc


def load_rgb(path: Path) -> Image.Image:
    """Decode fully to 8-bit RGB in the stored frame; truncated files raise DataError."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb8(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(path, f"cannot decode image ({exc})") from exc


def to_rgb8(img: Image.Image) -> Image.Image:
    """Grey, 16-bit, RGBA, CMYK and palette images all become 8-bit RGB the same way."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) or 1.0
        img = Image.fromarray((arr * (255.0 / hi)).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")
