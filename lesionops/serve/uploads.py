"""Checking what clients send: content type, image decoding, pixel-count bomb guard, boxes.

Every refusal is an `InputError` carrying the HTTP status and a reason a person can act on; the app
turns it into `{"detail": reason}`. Nothing a client sends may end in a 500.

Coordinates: a box is `[x1, y1, x2, y2]` in pixels of the image *as stored* (no EXIF rotation, the
frame labelImg draws in and the detector answers in), 0-based corners with x2/y2 exclusive, the way
a canvas or torchvision's xyxy boxes count. `voc_box` converts to labelImg's 1-based inclusive form.

The bomb guard never touches Pillow's global `Image.MAX_IMAGE_PIXELS` (requests run in threads):
the header is read lazily, width × height is compared with `serve.max_image_pixels`, and only then
are the pixels decoded. Pillow's own DecompressionBombError (far larger images) is caught too.

What is stored is the upload without its metadata (`privacy.strip_metadata`: no EXIF, GPS, XMP);
the sha256 that names and deduplicates it is of those stored bytes.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from components.common.images import EXIF_ORIENTATION
from components.common.store import StoredImage
from components.crop_patches.pixels import decode_open
from lesionops.serve.privacy import MetadataError, strip_metadata

# Pillow format → file extension; formats ingest_data reads are kept byte for byte on export.
FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
INGESTABLE = {".jpg", ".png", ".bmp", ".tif"}
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".webp": "image/webp",
}
# Browsers and curl send these when they do not know better; the bytes decide then.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


class InputError(Exception):
    """A request the server refuses, with its HTTP status and a human-readable reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Upload:
    """A decoded upload: the bytes to store (metadata removed; what is hashed) and 8-bit RGB pixels,
    decoded once, at the reduced scale its one use allows (`scale`; 1 = full size)."""

    data: bytes
    sha256: str
    image: Image.Image  # RGB, stored frame, 1/scale of `size` (crop_patches' reduced decode)
    orientation: int  # EXIF orientation tag (1 = as stored)
    ext: str
    size: tuple[int, int]  # width, height as stored
    scale: int = 1


def check_content_type(content_type: str | None, field: str = "file") -> None:
    """415 unless the part says it is an image (or says nothing useful, then the bytes decide)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in GENERIC_TYPES and not media.startswith("image/"):
        raise InputError(415, f"'{field}' must be an image (image/jpeg, image/png, ...), found content type {media!r}")


def decode_image(
    data: bytes, max_pixels: int, field: str = "file", scale: Callable[[int, int], int] | None = None
) -> Upload:
    """Decode an upload once; 415 if it is not an image format we read, 400 if corrupt or too large.

    `scale(width, height)`, asked once the header is read and checked, says how far the pixels may
    be reduced while decoding (crop_patches' `decode_open`: a JPEG decodes at 1/2..1/8 scale, which
    still reads all of its entropy-coded data, so a truncated file is refused as surely)."""
    if not data:
        raise InputError(400, f"'{field}' is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides below
            with Image.open(BytesIO(data)) as img:
                fmt = img.format or ""
                if fmt not in FORMATS:
                    raise InputError(
                        415,
                        f"'{field}': unsupported image format {fmt or 'unknown'}; "
                        f"send one of {sorted(set(FORMATS) - {'MPO'})}",
                    )
                pixels = img.width * img.height
                if pixels > max_pixels:
                    raise InputError(
                        400,
                        f"'{field}': {img.width}×{img.height} = {pixels:,} pixels is above the "
                        f"limit of {max_pixels:,} (serve.max_image_pixels; decompression-bomb guard)",
                    )
                orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
                size = img.size
                factor = scale(*size) if scale is not None else 1
                rgb = decode_open(img, factor)
                kept = strip_metadata(data, img)
    except MetadataError as exc:
        raise InputError(400, f"'{field}': the image's metadata cannot be removed safely ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise InputError(400, f"'{field}': refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InputError(415, f"'{field}' is not an image Pillow can identify") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(400, f"'{field}': the image cannot be decoded ({exc})") from exc
    return Upload(
        kept,
        hashlib.sha256(kept).hexdigest(),
        rgb,
        orientation if 1 <= orientation <= 8 else 1,
        FORMATS[fmt],
        size,
        factor,
    )


def parse_box(
    text: str | list[float] | None, width: int, height: int, min_side: float = 1.0, field: str = "box"
) -> list[float] | None:
    """`"x1,y1,x2,y2"` (or a list) inside a `width`×`height` image → floats; None when absent."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        box = [float(p) for p in parts]
    except (TypeError, ValueError) as exc:
        raise InputError(400, f"'{field}': expected four numbers x1,y1,x2,y2, found {text!r}") from exc
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise InputError(400, f"'{field}': expected four finite numbers x1,y1,x2,y2, found {text!r}")
    x1, y1, x2, y2 = box
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise InputError(
            400,
            f"'{field}': {box} must satisfy 0 ≤ x1 < x2 ≤ {width} and 0 ≤ y1 < y2 ≤ {height} "
            "(pixels of the stored image)",
        )
    if min(x2 - x1, y2 - y1) < min_side:
        raise InputError(400, f"'{field}': {box} is thinner than {min_side:g} px (crop_patches.min_box_side)")
    return box


def voc_box(box: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """0-based exclusive corners → labelImg's 1-based inclusive integer corners, inside the image."""
    x1, y1, x2, y2 = box
    return (
        min(max(math.floor(x1) + 1, 1), width),
        min(max(math.floor(y1) + 1, 1), height),
        min(max(math.ceil(x2), 1), width),
        min(max(math.ceil(y2), 1), height),
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Write, fsync, rename: a reader (or a restart after kill -9) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def store_image(image_dir: Path, upload: Upload) -> StoredImage:
    """The upload's bytes under `image_dir/<sha[:2]>/<sha><ext>`; the same image is stored once.

    An existing copy is touched: retention never deletes a file written or reused since its cutoff."""
    rel = f"{upload.sha256[:2]}/{upload.sha256}{upload.ext}"
    target = image_dir / rel
    try:
        os.utime(target)
    except FileNotFoundError:
        write_atomic(target, upload.data)
    width, height = upload.size
    return StoredImage(upload.sha256, rel, width, height, upload.orientation)
