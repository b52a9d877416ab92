"""Image probing and decoding with one consistent rule for EXIF orientation.

labelImg shows a photo as stored (Qt does not apply EXIF orientation when it loads the bytes), so
its boxes live in the *stored* pixel frame. Every stage therefore crops in the stored frame and
records the orientation tag so that later checks can warn about rotated photos.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, cast

import numpy as np
from PIL import Image, ImageChops, UnidentifiedImageError

from components.common.errors import DataError

EXIF_ORIENTATION = 0x0112
EXIF_MAKE, EXIF_MODEL = 0x010F, 0x0110  # IFD0: who made the camera, and which one
# The one list of file types read as images: photos Pillow decodes, plus DICOM (ingest converts it).
PHOTO_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
IMAGE_EXTENSIONS: tuple[str, ...] = (*PHOTO_EXTENSIONS, ".dcm")
IMAGE_CORRUPT = "IMAGE_CORRUPT"
IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
# full: decode every pixel at full size. draft: JPEGs decode at 1/8 scale, which still reads every
# byte of the entropy-coded data, so truncated files are caught as surely, at a fraction of the cost
# (other formats decode at full size); both give a perceptual hash. header: size/mode/format/
# orientation only, no pixels: corrupt bodies and near-duplicates go unchecked.
DECODE_MODES = ("full", "draft", "header")
_BIT_DEPTH = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}
SINGLE_CHANNEL = frozenset({"1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
# A draft decode keeps at least this many pixels on the short side: the perceptual hash resizes to
# 32x32, and from a 1/8-scale thumbnail of a small photo (a 378x504 phone picture → 47x63) its
# low frequencies shift by several bits, enough to call two different cards on one carpet twins.
PHASH_MIN_SIDE = 128
# Largest channel difference (of 255) still counted as grey: a grey JPEG stored as YCbCr decodes with
# a level or two of chroma noise, more at reduced scale.
GREY_TOLERANCE = 4


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    mode: str
    format: str
    orientation: int
    bit_depth: int = 8
    phash: str | None = None
    grey: bool | None = None  # every pixel grey (R = G = B); None when the pixels were not decoded
    camera: str = ""  # EXIF make and model ("" when the photo does not say)


@contextmanager
def _pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Pillow's bomb guard is a module global; swap it for the call and make its warning fatal.

    Pillow only *warns* between 1x and 2x the limit; an upload that size is still hostile or a
    mistake, so both the warning and the error become IMAGE_TOO_LARGE.
    """
    previous = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def probe(
    path: Path | IO[bytes], max_pixels: int | None = None, with_phash: bool = False, decode: str = "draft"
) -> ImageInfo:
    """Size, mode, format, bit depth and EXIF orientation; unless `header`, after proving the pixels decode.

    Truncated JPEGs have a perfect header, so `full` and `draft` decode; `draft` decodes JPEGs at
    1/8 scale, which still reads every byte of the entropy-coded data but costs a fraction of a
    full decode (other formats decode at full size). The perceptual hash is taken from that same decoded image so
    near-duplicates cost no extra read. `header` stops after the header: no pixel is decoded, so a
    truncated or corrupt body is NOT detected and `phash` stays None, whatever `with_phash` says;
    the pixel-count guard still applies (Pillow checks it when it reads the header).
    `path` may be an open binary file, so a caller that already holds the bytes (to hash them) does
    not open the file twice. Errors carry `code` IMAGE_TOO_LARGE (over `max_pixels`) or
    IMAGE_CORRUPT (anything else).
    """
    if decode not in DECODE_MODES:
        raise ValueError(f"decode: expected one of {list(DECODE_MODES)}, found {decode!r}")
    name = path if isinstance(path, Path) else Path(str(getattr(path, "name", "<bytes>")))
    try:
        with _pixel_limit(max_pixels), Image.open(path) as img:
            exif = img.getexif()
            orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
            info = ImageInfo(
                img.width,
                img.height,
                img.mode,
                img.format or "",
                orientation,
                _BIT_DEPTH.get(img.mode, 8),
                camera=camera_name(exif.get(EXIF_MAKE), exif.get(EXIF_MODEL)),
            )
            if decode == "header":
                return info
            if decode == "draft" and img.format == "JPEG":
                img.draft(img.mode, draft_size(img.width, img.height))
            img.load()
            if with_phash:
                rgb = to_rgb8(img)
                info = replace(info, phash=phash(rgb), grey=img.mode in SINGLE_CHANNEL or is_grey(rgb))
            return info
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(name, f"image too large ({exc})", code=IMAGE_TOO_LARGE) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(name, f"not a readable image ({exc})", code=IMAGE_CORRUPT) from exc


def camera_name(make: object, model: object) -> str:
    """ "Make Model" from EXIF (or DICOM's manufacturer and model), the make left out when the model
    already starts with its first word ("NIKON CORPORATION" + "NIKON D750" is "NIKON D750"); ""
    when neither is given."""
    make_s, model_s = (" ".join(str(v).replace("\x00", " ").split()) if v is not None else "" for v in (make, model))
    if make_s and model_s.lower().startswith(make_s.split()[0].lower()):
        return model_s
    return " ".join(p for p in (make_s, model_s) if p)


def draft_size(width: int, height: int) -> tuple[int, int]:
    """The size to ask JPEG draft decoding for: 1/8 scale, less reduced when the short side would
    fall under PHASH_MIN_SIDE (Pillow picks the largest 1/2^k scale at least this size)."""
    k = max(1, min(8, min(width, height) // PHASH_MIN_SIDE))
    return max(width // k, 1), max(height // k, 1)


def is_grey(rgb: Image.Image) -> bool:
    """True when no pixel has colour (channels within GREY_TOLERANCE), as Qt's QImage.allGray()
    decides it for labelImg's `<depth>`: a grey photo saved as RGB is grey content."""
    r, g, b = rgb.split()
    spread = [cast(int, ImageChops.difference(a, b).getextrema()[1]) for a, b in ((r, g), (g, b))]  # one band
    return max(spread) <= GREY_TOLERANCE


def phash(img: Image.Image) -> str:
    """64-bit DCT perceptual hash as 16 hex chars: low 8x8 DCT frequencies of a 32x32 grey image
    thresholded at their median, so re-encoded/resized copies of one photo land a few bits apart."""
    from scipy.fft import dctn

    grey = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dctn(grey, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def load_rgb(path: Path) -> Image.Image:
    """Decode fully to 8-bit RGB in the stored frame; truncated files raise DataError.

    DICOM files go through the DICOM reader (rescale, window, MONOCHROME1) so every stage that
    crops or measures pixels sees the same 8-bit RGB image that ingestion hashed and probed.
    """
    if path.suffix.lower() == ".dcm":
        from components.common.dicom import read_dicom

        return read_dicom(path).image
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb8(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(path, f"cannot decode image ({exc})", code=IMAGE_CORRUPT) from exc


def load_reduced(path: Path, max_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """8-bit RGB at ≤ `max_side` pixels per side, decoded cheaply, and the size as stored.

    JPEGs decode at a reduced DCT scale (still ≥ `max_side`), several times faster than in full; the
    rest is a bilinear thumbnail. Drift features and skin tone both measure on this copy."""
    try:
        with Image.open(path) as img:
            size = img.size
            img.draft("RGB", (max_side, max_side))
            img.load()
            small = to_rgb8(img)
        if max(small.size) > max_side:
            small.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(path, f"cannot decode image ({exc})") from exc
    return small, size


def to_rgb8(img: Image.Image) -> Image.Image:
    """Grey, 16-bit, RGBA, CMYK and palette images all become 8-bit RGB the same way."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) or 1.0
        img = Image.fromarray((arr * (255.0 / hi)).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")
