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
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from components.common.errors import DataError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class S3Config:
    """Where the S3 API lives; None = boto3's own resolution (AWS_* env, ~/.aws/config)."""

    endpoint_url: str | None = None
    region: str | None = None


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


def stage_source(uri: str | Path, cache_dir: Path, s3: S3Config | None = None,
                 zip_limits: ZipLimits | None = None) -> StagedSource:
    """Local folder as is; `.zip` extracted safely; `s3://` prefix mirrored into `cache_dir`."""
    text = str(uri)
    if text.startswith("s3://"):
        return _stage_s3(text, cache_dir, s3 or S3Config())
    path = Path(text.removeprefix("file://")) if text.startswith("file://") else Path(text)
    if path.is_file() and path.suffix.lower() == ".zip":
        return _stage_zip(path.resolve(), cache_dir, zip_limits or ZipLimits())
    if not path.is_dir():
        raise DataError(path, "source folder does not exist (expected a folder, a .zip or s3://bucket/prefix)")
    base = path.resolve()  # once, not per file
    return StagedSource(path, "folder",
                        lambda p: (base / p.relative_to(path)).as_uri() if p.is_relative_to(path) else p.resolve().as_uri())


def _uri_under(root: Path, base_uri: str) -> Callable[[Path], str]:
    """Local file under the staged root → the URI of the same file at its origin."""
    local = root.resolve()
    return lambda p: base_uri + p.resolve().relative_to(local).as_posix()


# --- zip -------------------------------------------------------------------------------------

def _safe_member(name: str, archive: Path) -> PurePosixPath | None:
    """The member's relative path, None for folders; refuses anything that could escape the root."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        raise DataError(archive, f"unsafe member path {name!r} (absolute or '..') refused")
    return None if name.endswith("/") else posix


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

def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise DataError(uri, "expected s3://bucket/prefix")
    return bucket, (prefix.rstrip("/") + "/") if prefix.strip("/") else ""


def _s3_client(cfg: S3Config) -> Any:
    """Created on use, never at import: credentials come from boto3's standard chain only."""
    import boto3

    return boto3.client("s3", endpoint_url=cfg.endpoint_url, region_name=cfg.region)


def _list_objects(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj for page in pages for obj in page.get("Contents", []) if not obj["Key"].endswith("/")]


def _stage_s3(uri: str, cache_dir: Path, cfg: S3Config) -> StagedSource:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _split_s3(uri)
    root = cache_dir / "s3" / bucket / prefix
    root.mkdir(parents=True, exist_ok=True)
    index_path = cache_dir / "s3-index" / f"{bucket}-{hashlib.sha256(prefix.encode()).hexdigest()[:16]}.json"
    index_path.parent.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.is_file() else {}
    stats = {"downloaded": 0, "skipped": 0, "removed": 0}
    try:
        client = _s3_client(cfg)
        objects = _list_objects(client, bucket, prefix)
        fresh: dict[str, Any] = {}
        for obj in objects:
            rel = _safe_member(obj["Key"][len(prefix):], Path(uri))
            assert rel is not None
            fresh[str(rel)] = _sync_object(client, bucket, obj, root / str(rel), index.get(str(rel)), stats)
    except (BotoCoreError, ClientError) as exc:
        raise DataError(uri, f"cannot read S3 prefix ({exc})") from exc
    for stale in set(index) - set(fresh):  # deleted upstream: must not be ingested again
        (root / stale).unlink(missing_ok=True)
        stats["removed"] += 1
    index_path.write_text(json.dumps(fresh, sort_keys=True))
    if not fresh:
        raise DataError(uri, "no objects under this S3 prefix")
    return StagedSource(root, "s3", _uri_under(root, f"s3://{bucket}/{prefix}"), stats)


def _sync_object(client: Any, bucket: str, obj: dict[str, Any], dest: Path, cached: dict[str, Any] | None,
                 stats: dict[str, int]) -> dict[str, Any]:
    """Download unless the cached copy has the same ETag and size; returns the index entry."""
    entry = {"etag": obj["ETag"], "size": int(obj["Size"])}
    if cached == entry and dest.is_file() and dest.stat().st_size == entry["size"]:
        stats["skipped"] += 1
        return entry
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    client.download_file(bucket, obj["Key"], str(tmp))
    stamp = obj["LastModified"].timestamp()
    os.utime(tmp, (stamp, stamp))
    os.replace(tmp, dest)
    stats["downloaded"] += 1
    return entry
