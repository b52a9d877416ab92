"""Turn a dataset URI (folder, .zip, s3://bucket/prefix) into a local folder, and back again.

Every stage works on local files; where they came from is lineage. `stage_source` materialises
the source once under a cache folder and returns a mapping from each local file to the URI the
user would recognise (`s3://bucket/key`, `zip:///abs/a.zip!/member`, `file:///abs/path`).
Re-runs are cheap: an unchanged archive is not re-extracted and unchanged S3 objects (same ETag
and size) are not downloaded again. Extracted/downloaded files get the archive's / object's own
timestamp as mtime, so the manifest's incremental (size, mtime) check keeps working on them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from components.common import storage
from components.common.errors import DataError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    """Zip-bomb guard: refuse archives that would expand past these limits."""

    max_total_bytes: int = 50 * 1024**3
    max_members: int = 1_000_000


@dataclass(frozen=True)
class StagedSource:
    root: Path
    kind: str  # folder | zip | s3
    uri_of: Callable[[Path], str]
    stats: dict[str, int] = field(default_factory=dict)


def stage_source(uri: str | Path, cache_dir: Path, zip_limits: ZipLimits | None = None) -> StagedSource:
    """Local folder as is; `.zip` extracted safely; `s3://` prefix mirrored into `cache_dir`
    (endpoint, region and credentials from the standard AWS environment/config only)."""
    loc = storage.parse(uri)
    if loc.is_s3:
        return _stage_s3(loc.uri, cache_dir)
    path = loc.path
    if path.is_file() and path.suffix.lower() == ".zip":
        return _stage_zip(path.resolve(), cache_dir, zip_limits or ZipLimits())
    if not path.is_dir():
        raise DataError(path, "source folder does not exist (expected a folder, a .zip or s3://bucket/prefix)")
    base = path.resolve()  # once, not per file
    return StagedSource(
        path,
        "folder",
        lambda p: (base / p.relative_to(path)).as_uri() if p.is_relative_to(path) else p.resolve().as_uri(),
    )


def _uri_under(root: Path, base_uri: str) -> Callable[[Path], str]:
    """Local file under the staged root → the URI of the same file at its origin."""
    local = root.resolve()
    return lambda p: base_uri + p.resolve().relative_to(local).as_posix()


# --- zip -------------------------------------------------------------------------------------


def _safe_member(name: str, archive: Path) -> PurePosixPath | None:
    """The member's relative path, None for folders; refuses anything that could escape the root."""
    return None if name.endswith("/") else storage.safe_relative(name, str(archive))


def _check_zip(zf: zipfile.ZipFile, archive: Path, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise DataError(archive, f"{len(infos)} members exceed the limit of {limits.max_members}")
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        raise DataError(archive, f"expands to {total} bytes, over the limit of {limits.max_total_bytes}")
    for info in infos:
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise DataError(archive, f"symbolic link member {info.filename!r} refused")
    return [i for i in infos if _safe_member(i.filename, archive) is not None]


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: list[int], archive: Path) -> None:
    """Copy one member, counting real bytes: headers can lie about sizes (zip bombs do)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise DataError(archive, "expands past the configured size limit while extracting")
            out.write(chunk)
    stamp = datetime(*info.date_time).timestamp()
    os.utime(dest, (stamp, stamp))


def _stage_zip(archive: Path, cache_dir: Path, limits: ZipLimits) -> StagedSource:
    stat = archive.stat()
    key = hashlib.sha256(f"{archive}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = cache_dir / "zip" / f"{archive.stem}-{key}"
    done = root.with_name(root.name + ".done")  # beside, not inside: never ingested as data
    stats = {"extracted": 0, "reused": 0}
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _check_zip(zf, archive, limits)
            if done.is_file():
                stats["reused"] = len(members)
            else:
                shutil.rmtree(root, ignore_errors=True)
                budget = [limits.max_total_bytes]
                for info in members:
                    _extract(zf, info, root / str(_safe_member(info.filename, archive)), budget, archive)
                done.write_text(str(archive))
                stats["extracted"] = len(members)
    except zipfile.BadZipFile as exc:
        raise DataError(archive, f"not a readable zip archive ({exc})") from exc
    except DataError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return StagedSource(root, "zip", _uri_under(root, f"zip://{archive}!/"), stats)


# --- S3 --------------------------------------------------------------------------------------


def _stage_s3(uri: str, cache_dir: Path) -> StagedSource:
    """The prefix mirrored by the storage layer (same cache layout, unchanged objects skipped)."""
    loc = storage.parse(uri)
    mirror = storage.mirror_prefix(uri, cache_dir)
    return StagedSource(mirror.root, "s3", _uri_under(mirror.root, f"s3://{loc.bucket}/{loc.prefix}"), mirror.stats)
