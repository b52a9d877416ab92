"""One storage layer for every stage: a local path or an `s3://bucket/key` URI, used the same way.

Stages compute on local files (PIL, torch, pandas and MLflow all want paths); where the bytes live
is a deployment choice. So an S3 input is mirrored into a local cache (objects with the same ETag
and size as last time are not downloaded again) and an S3 output is written to a local folder that
is uploaded only when the stage succeeded: a failed stage never leaves a half-written prefix, and
its error propagates unchanged. Local paths pass through untouched, so `dvc repro` on plain folders
behaves exactly as before.

S3 calls go through `components.common.s3` (s3fs: many files in flight at once; endpoint, region
and credentials only from the standard AWS chain).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from components.common import s3
from components.common.errors import DataError

DEFAULT_CACHE = Path(".cache/lesionops/storage")  # relative to the working dir, like ingest's cache


@dataclass(frozen=True)
class Location:
    """Where a URI points: an S3 bucket + key, or (bucket None) a local path."""

    bucket: str | None
    key: str  # S3 key without a leading "/", or the local path's text

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    @property
    def path(self) -> Path:
        if self.is_s3:
            raise ValueError(f"{self.uri} is not a local path")
        return Path(self.key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.is_s3 else self.key

    @property
    def prefix(self) -> str:
        """The key as a folder prefix ("a/b/"; "" for the whole bucket)."""
        return self.key.rstrip("/") + "/" if self.key.strip("/") else ""


@dataclass(frozen=True)
class Mirror:
    """A local copy of an S3 file or prefix and what syncing it cost (downloaded/skipped/removed)."""

    root: Path
    n_files: int
    stats: dict[str, int] = field(default_factory=dict)


def parse(uri: str | Path) -> Location:
    """`s3://bucket/key`, `file:///abs/path` or a plain path; any other scheme is refused."""
    if isinstance(uri, Path):
        return Location(None, str(uri))
    text = str(uri)
    if text.startswith("s3://"):
        bucket, _, key = text.removeprefix("s3://").partition("/")
        if not bucket:
            raise DataError(text, "expected s3://bucket/key")
        return Location(bucket, key.lstrip("/"))
    if text.startswith("file://"):
        return Location(None, unquote(urlparse(text).path))
    if "://" in text:
        raise DataError(text, "unsupported location: expected a local path, file:///abs/path or s3://bucket/key")
    return Location(None, text)


def is_remote(uri: str | Path) -> bool:
    return parse(uri).is_s3


def safe_relative(rel: str, uri: str) -> PurePosixPath:
    """A key's path under its prefix; refuses anything that could escape the local root."""
    posix = PurePosixPath(rel.replace("\\", "/"))
    if not rel or posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        raise DataError(uri, f"unsafe member path {rel!r} (absolute or '..') refused")
    return posix


def _part(dest: Path) -> Path:
    """The temp name a file is written under, then renamed into place: never a half file."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.part")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _part(path).write_bytes(data)
    os.replace(_part(path), path)


def _local_files(folder: Path) -> dict[str, Path]:
    """The files under a folder by posix path relative to it, sorted."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


# --- small reads and writes ---------------------------------------------------------------------


def read_bytes(uri: str | Path) -> bytes:
    loc = parse(uri)
    if not loc.is_s3:
        if not loc.path.is_file():
            raise DataError(loc.path, "file not found")
        return loc.path.read_bytes()
    with s3.errors(loc.uri, "read object"):  # max_concurrency=1: one GET, no size probe first
        return bytes(s3.filesystem().cat_file(f"{loc.bucket}/{loc.key}", max_concurrency=1))


def write_bytes(uri: str | Path, data: bytes) -> None:
    """Whole-object write; a local file is replaced atomically (temp file + rename)."""
    loc = parse(uri)
    if not loc.is_s3:
        return _write_atomic(loc.path, data)
    with s3.errors(loc.uri, "write object"):
        s3.filesystem().pipe_file(f"{loc.bucket}/{loc.key}", data)


def exists(uri: str | Path) -> bool:
    """A file or a non-empty folder/prefix is there. A missing bucket or refused access is an
    error, not False: the question could not be answered."""
    loc = parse(uri)
    if not loc.is_s3:
        return loc.path.exists()
    fs = s3.filesystem()
    with s3.errors(loc.uri, "check object"):
        if s3.head(fs, str(loc.bucket), loc.key):
            return True
        return bool(fs.call_s3("list_objects_v2", Bucket=loc.bucket, Prefix=loc.prefix, MaxKeys=1).get("KeyCount"))


def list_files(uri: str | Path) -> list[str]:
    """Relative paths (posix, sorted) of the files under a folder or S3 prefix."""
    loc = parse(uri)
    if not loc.is_s3:
        return list(_local_files(loc.path)) if loc.path.is_dir() else []
    with s3.errors(loc.uri, "list prefix"):
        return sorted(s3.objects(s3.filesystem(), str(loc.bucket), loc.prefix))


def object_listing(uri: str) -> list[tuple[str, str, int]]:
    """(path under the prefix, ETag, size) of every object under an s3:// prefix, sorted: what
    changes whenever an object is added, removed or rewritten, without reading any of them."""
    loc = parse(uri)
    if not loc.is_s3:
        raise DataError(uri, "an object listing needs an s3://bucket/prefix")
    with s3.errors(loc.uri, "list prefix"):
        objects = s3.objects(s3.filesystem(), str(loc.bucket), loc.prefix)
    return sorted((rel, str(obj["ETag"]).strip('"'), int(obj["size"])) for rel, obj in objects.items())


def download(uri: str, dest: Path, what: str = "object") -> Path:
    """One S3 object to `dest` (temp name, then renamed); `what` names it in the error ("pretrained weights")."""
    loc = parse(uri)
    if not loc.is_s3:
        raise ValueError(f"download needs an s3:// URI, found {uri!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with s3.errors(loc.uri, f"download {what}"), s3.progress(f"download {what}") as callback:
            s3.filesystem().get_file(f"{loc.bucket}/{loc.key}", str(_part(dest)), callback=callback)
        os.replace(_part(dest), dest)
    finally:
        _part(dest).unlink(missing_ok=True)
    return dest


# --- mirroring S3 → local ---------------------------------------------------------------------


def _index_path(cache_dir: Path, bucket: str, key: str) -> Path:
    return Path(cache_dir) / "s3-index" / f"{bucket}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _mirror(fs: Any, loc: Location, key: str, objects: dict[str, dict[str, Any]], cache_dir: Path) -> Mirror:
    """Bring `objects` (by path under `key`; "" is the object at `key` itself) into
    `cache_dir/s3/<bucket>/<key>`, downloading only those whose cached copy lacks the same ETag and
    size; copies of objects gone upstream are deleted (they must not be read again)."""
    root, index_path = Path(cache_dir) / "s3" / str(loc.bucket) / key, _index_path(cache_dir, str(loc.bucket), key)
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    fresh: dict[str, Any] = {}
    todo = []
    for rel, obj in objects.items():
        member = str(safe_relative(rel, loc.uri)) if rel else ""
        entry, dest = {"etag": obj["ETag"], "size": int(obj["size"])}, root / member
        fresh[member] = entry
        if index.get(member) != entry or not dest.is_file() or dest.stat().st_size != entry["size"]:
            todo.append((obj, dest))
    _download_all(fs, todo, f"download {loc.uri}")
    stale = set(index) - set(fresh)
    for member in stale:
        (root / member).unlink(missing_ok=True)
    _write_atomic(index_path, json.dumps(fresh, sort_keys=True).encode())
    return Mirror(root, len(fresh), {"downloaded": len(todo), "skipped": len(fresh) - len(todo), "removed": len(stale)})


def _download_all(fs: Any, todo: list[tuple[dict[str, Any], Path]], what: str) -> None:
    """Concurrent downloads to temp names, then each renamed into place (a new inode: hard links to
    an old copy keep their bytes) with LastModified as mtime, so (size, mtime) change checks keep
    working. A failure moves nothing and leaves no partial file."""
    parts = [_part(dest) for _, dest in todo]
    try:
        with s3.progress(what) as callback:
            names, targets = [o["name"] for o, _ in todo], [str(p) for p in parts]
            fs.get(names, targets, callback=callback, batch_size=s3.CONCURRENCY)
        for (obj, dest), part in zip(todo, parts, strict=True):
            os.utime(part, (obj["LastModified"].timestamp(),) * 2)
            os.replace(part, dest)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


def mirror_prefix(uri: str, cache_dir: Path, *, allow_empty: bool = False) -> Mirror:
    """Mirror every object under an S3 prefix into `cache_dir/s3/<bucket>/<prefix>`: same layout
    as the prefix, unchanged objects skipped, objects deleted upstream deleted here too."""
    loc, fs = parse(uri), s3.filesystem()
    with s3.errors(loc.uri, "read S3 prefix"):
        mirror = _mirror(fs, loc, loc.prefix, s3.objects(fs, str(loc.bucket), loc.prefix), cache_dir)
    if not mirror.n_files and not allow_empty:
        raise DataError(loc.uri, "no objects under this S3 prefix")
    mirror.root.mkdir(parents=True, exist_ok=True)
    return mirror


def fetch(uri: str | Path, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """A local path holding `uri`: a local path as is; an S3 object as a cached file; an S3 prefix
    as a cached folder with the prefix's layout (what a previous stage published as a folder)."""
    loc = parse(uri)
    if not loc.is_s3:
        if not loc.path.exists():
            raise DataError(loc.path, "no such file or folder")
        return loc.path
    fs = s3.filesystem()
    with s3.errors(loc.uri, "read"):
        if head := s3.head(fs, str(loc.bucket), loc.key):
            return _mirror(fs, loc, loc.key, {"": head}, cache_dir).root
    mirror = mirror_prefix(loc.uri, cache_dir, allow_empty=True)
    if not mirror.n_files:
        raise DataError(loc.uri, "no such object, and no objects under it as a prefix")
    return mirror.root


def local_input(uri: str | Path, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """What a stage's input flag needs: a local path unchanged (the stage reports a missing one in
    its own words), an S3 file or prefix fetched (a missing one is a DataError here)."""
    loc = parse(uri)
    return loc.path if not loc.is_s3 else fetch(loc.uri, cache_dir)


# --- publishing local → S3 --------------------------------------------------------------------


def _unchanged(path: Path, remote: dict[str, Any] | None) -> bool:
    """Same bytes already there? A single-part ETag is the MD5; multipart ETags never match (→ upload)."""
    if remote is None or int(remote["size"]) != path.stat().st_size:
        return False
    with path.open("rb") as fh:
        md5 = hashlib.file_digest(fh, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
    return bool(remote["ETag"].strip('"') == md5)


def publish(local: str | Path, uri: str | Path, *, delete: bool = False) -> dict[str, int]:
    """Copy a file or folder to `uri` (a local path: plain copy; S3: upload, skipping objects that
    already hold the same bytes). `delete` also removes what is under the prefix but not in the
    folder, so the prefix then mirrors it exactly. Returns counts for the log."""
    src, loc = Path(local), parse(uri)
    if not src.exists():
        raise DataError(src, "nothing to publish: no such file or folder")
    if not loc.is_s3:
        if src.resolve() != loc.path.resolve() and src.is_dir():
            shutil.copytree(src, loc.path, dirs_exist_ok=True)
        elif src.resolve() != loc.path.resolve():
            loc.path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, loc.path)
        return {"uploaded": 0, "unchanged": 0, "deleted": 0}
    files = {"": src} if src.is_file() else _local_files(src)
    bucket, prefix, fs = str(loc.bucket), loc.key if src.is_file() else loc.prefix, s3.filesystem()
    with s3.errors(loc.uri, "publish"):
        remote = s3.objects(fs, bucket, prefix) if src.is_dir() else {}
        todo = [(str(p), f"{bucket}/{prefix}{rel}") for rel, p in files.items() if not _unchanged(p, remote.get(rel))]
        with s3.progress(f"upload {loc.uri}") as callback:
            fs.put([p for p, _ in todo], [r for _, r in todo], callback=callback, batch_size=s3.CONCURRENCY)
        stale = [prefix + rel for rel in sorted(set(remote) - set(files))] if delete else []
        s3.delete(fs, bucket, stale)
    return {"uploaded": len(todo), "unchanged": len(files) - len(todo), "deleted": len(stale)}


def _forget(loc: Location, cache_dir: Path, key: str) -> None:
    """Drop a mirror whose files a failed stage may have half rewritten: the next run starts from S3."""
    _index_path(cache_dir, str(loc.bucket), key).unlink(missing_ok=True)
    target = Path(cache_dir) / "s3" / str(loc.bucket) / key
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    target.unlink(missing_ok=True)


def _remember(loc: Location, cache_dir: Path, local: Path, key: str) -> None:
    """After publishing, record the uploaded ETags so the next fetch of this URI downloads nothing."""
    fs = s3.filesystem()
    with s3.errors(loc.uri, "list published objects"):
        found = s3.objects(fs, str(loc.bucket), key) if local.is_dir() else {"": s3.head(fs, str(loc.bucket), key)}
    index = {
        rel: {"etag": obj["ETag"], "size": int(obj["size"])}
        for rel, obj in found.items()
        if obj and (local / rel).is_file() and (local / rel).stat().st_size == int(obj["size"])
    }
    _write_atomic(_index_path(cache_dir, str(loc.bucket), key), json.dumps(index, sort_keys=True).encode())


def _output_file(loc: Location, cache_dir: Path) -> Path:
    """The cached copy of the output file there now, or where the first run writes it."""
    fs = s3.filesystem()
    with s3.errors(loc.uri, "read"):
        fs.call_s3("list_objects_v2", Bucket=loc.bucket, Prefix=loc.key, MaxKeys=1)  # NoSuchBucket now, not after
        if head := s3.head(fs, str(loc.bucket), loc.key):
            return _mirror(fs, loc, loc.key, {"": head}, cache_dir).root
    target = Path(cache_dir) / "s3" / str(loc.bucket) / loc.key
    target.unlink(missing_ok=True)  # the first run: a stale local copy must not be uploaded
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


@contextlib.contextmanager
def local_output(
    uri: str | Path, cache_dir: Path = DEFAULT_CACHE, *, is_file: bool = False, publish_on_success: bool = True
) -> Iterator[Path]:
    """A local folder (or file, `is_file`) for a stage to write `uri` into.

    Local: the path itself. S3: the cached mirror of what is there now (so incremental stages such
    as ingest_data and crop_patches see their previous output, as they do locally), uploaded when
    the block succeeds, with what the stage deleted deleted on S3 too. When the block raises,
    nothing is uploaded, the mirror is dropped and the error propagates. `publish_on_success`
    False (e.g. DDP ranks other than 0, which write nothing) only reads.
    """
    loc = parse(uri)
    if not loc.is_s3:
        yield loc.path
        return
    key = loc.key if is_file else loc.prefix
    target = _output_file(loc, cache_dir) if is_file else mirror_prefix(loc.uri, cache_dir, allow_empty=True).root
    try:
        yield target
    except BaseException:
        _forget(loc, cache_dir, key)
        raise
    if publish_on_success and target.exists():
        publish(target, loc.uri, delete=not is_file)
        _remember(loc, cache_dir, target, key)
