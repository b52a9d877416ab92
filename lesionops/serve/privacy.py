"""What a stored patient photo may carry: its pixels, never the phone's metadata.

Phone photos arrive with EXIF (camera serial, time, often the GPS position), XMP and IPTC blocks,
and sometimes a second embedded image (MPO) with metadata of its own. None of it is needed to
classify, review or train, so nothing of it is stored:

* JPEG: the file is rewritten segment by segment, lossless: the compressed image data, tables and
  the JFIF, ICC colour profile and Adobe colour-transform segments stay; every other APPn segment
  (EXIF, XMP, IPTC, MPF, maker notes) and every comment goes, and so does anything after the first
  image's end marker (MPO's second frame, trailing bytes). Re-encoding instead would lose quality
  and move the pixels away from what the clinician saw.
* Other formats (PNG, TIFF, BMP, WebP): the first frame's pixels are re-encoded losslessly in the
  same format with no metadata at all (only PNG/palette transparency is kept).

The EXIF orientation is read before it is dropped and recorded with the stored image, so boxes,
which are in the stored frame, stay right; the feedback export applies it (crop_patches' `upright`
turns the pixels, `upright_box` the box), since the exported file no longer says how to turn itself.
"""

from __future__ import annotations

from io import BytesIO

from PIL import Image

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0..7 carry no length
KEEP_APP = {0xE0: b"JFIF\0", 0xE2: b"ICC_PROFILE\0", 0xEE: b"Adobe"}
TURNED = frozenset(range(2, 9))  # EXIF orientations other than 1 ("as stored")
SAVE_OPTIONS = {"PNG": {}, "TIFF": {}, "BMP": {}, "WEBP": {"lossless": True, "exact": True}}


class MetadataError(ValueError):
    """The file decoded, but its structure is too irregular to rewrite safely."""


def _keep_segment(marker: int, payload: bytes) -> bool:
    if marker in KEEP_APP:
        return payload.startswith(KEEP_APP[marker])
    return not (0xE0 <= marker <= 0xEF or marker == 0xFE)  # other APPn and COM go


def _scan_end(data: bytes, i: int) -> int:
    """Where the entropy-coded data starting at `i` ends: the next 0xFF that begins a marker
    (0xFF00 is a stuffed byte and RSTn a restart inside the scan)."""
    while True:
        j = data.find(b"\xff", i)
        if j < 0 or j + 1 >= len(data):
            return len(data)
        nxt = data[j + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            i = j + 2
            continue
        return j


def strip_jpeg(data: bytes) -> bytes:
    """The JPEG without EXIF/XMP/IPTC/comments/extra frames; the image data byte for byte."""
    if data[:2] != b"\xff\xd8":
        raise MetadataError("not a JPEG stream")
    out, i, n = bytearray(data[:2]), 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise MetadataError(f"expected a JPEG marker at byte {i}")
        marker = data[i + 1] if i + 1 < n else EOI
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == EOI:
            break
        if marker in STANDALONE:
            out += data[i : i + 2]
            i += 2
            continue
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if end > n or end < i + 4:
            raise MetadataError(f"JPEG segment 0x{marker:02X} at byte {i} runs past the end")
        if _keep_segment(marker, data[i + 4 : end]):
            out += data[i:end]
        i = end
        if marker == SOS:
            j = _scan_end(data, i)
            out += data[i:j]
            i = j
    out += b"\xff\xd9"
    return bytes(out)


def reencode(img: Image.Image, fmt: str) -> bytes:
    """The first frame's pixels in `fmt`, lossless, with no metadata (PNG transparency kept)."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    clean = img.copy()  # pixels and palette; `info` (exif, xmp, icc, text chunks, dpi) is dropped below
    keep = {"transparency": img.info["transparency"]} if "transparency" in img.info else {}
    clean.info = dict(keep)
    buf = BytesIO()
    clean.save(buf, format=fmt, **SAVE_OPTIONS[fmt], **keep)
    return buf.getvalue()


def strip_metadata(data: bytes, img: Image.Image) -> bytes:
    """The bytes to store for this decoded upload (`img` is the opened original, pixels loaded)."""
    if img.format in ("JPEG", "MPO"):
        return strip_jpeg(data)
    return reencode(img, img.format or "PNG")


def upright_box(box: list[float], size: tuple[int, int], orientation: int) -> list[float]:
    """A stored-frame box (x1,y1,x2,y2, pixel edges) in the frame crop_patches' `upright` turns to
    (Pillow's transposes as ImageOps.exif_transpose applies them; tested pixel by pixel)."""
    w, h = size
    maps = {
        2: lambda x, y: (w - x, y),
        3: lambda x, y: (w - x, h - y),
        4: lambda x, y: (x, h - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (h - y, x),
        7: lambda x, y: (h - y, w - x),
        8: lambda x, y: (y, w - x),
    }
    move = maps.get(orientation)
    if move is None:
        return list(box)
    (ax, ay), (bx, by) = move(box[0], box[1]), move(box[2], box[3])
    return [min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)]
