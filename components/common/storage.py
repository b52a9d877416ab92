"""One storage layer for every stage: a local path or an `s3://bucket/key` URI, used the same way.

Stages compute on local files (PIL, torch, pandas and MLflow all want paths); where the bytes live
is a deployment choice. So an S3 input is mirrored into a local cache (objects with the same ETag
and size as last time are not downloaded again) and an S3 output is written to a local folder that
is uploaded only when the stage succeeded: a failed stage never leaves a half-written prefix, and
its error propagates unchanged. Local paths pass through untouched, so `dvc repro` on plain folders
behaves exactly as before.

Endpoint, region and credentials come only from boto3's standard chain (AWS_ENDPOINT_URL_S3 /
AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID…, ~/.aws, instance roles): the client is
`boto3.client("s3")`, created on use, never at import and never with settings from code or params.

Over ~400 lines on purpose until the s3fs rewrite (issue "Results where users look") replaces the hand-written transfers: one module keeps every local/S3 rule in one place.
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

from components.common.errors import DataError

DEFAULT_CACHE = Path(".cache/lesionops/storage")  # relative to the working dir, like ingest's cache
_MD5_CHUNK = 1 << 20
_WHY = {  # S3 error codes → what a user should check
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "no such object",
    "404": "no such object (or no such bucket)",
    "AccessDenied": "access denied (check the credentials and the bucket policy)",
    "403": "access denied (check the credentials and the bucket policy)",
    "InvalidAccessKeyId": "the access key is not known to this endpoint",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
}


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


# --- S3 plumbing -------------------------------------------------------------------------------


def _client() -> Any:
    """Created on use: boto3's own resolution of endpoint, region and credentials, nothing else."""
    import boto3

    return boto3.client("s3")


@contextlib.contextmanager
def _s3_errors(uri: str, action: str) -> Iterator[None]:
    """Any S3 or connection failure → DataError naming the URI and what to check."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, S3UploadFailedError) as exc:
        error = exc if isinstance(exc, ClientError) else exc.__context__  # upload_file wraps the ClientError
        code = str(error.response.get("Error", {}).get("Code", "?")) if isinstance(error, ClientError) else "?"
        raise DataError(uri, f"cannot {action}: {_WHY.get(code, 'S3 refused the request')} [S3 {code}]") from exc
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, …
        raise DataError(uri, f"cannot {action}: {exc}") from exc


def _objects(client: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Objects under `prefix`, keyed by their path relative to it (folder markers left out)."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {
        obj["Key"][len(prefix) :]: obj
        for page in pages
        for obj in page.get("Contents", [])
        if not obj["Key"].endswith("/")
    }


def _is_object(client: Any, loc: Location) -> bool:
    """True when the key is one object; a 404 means "not a file" (it may still be a prefix)."""
    from botocore.exceptions import ClientError

    if not loc.key or loc.key.endswith("/"):
        return False
    try:
        client.head_object(Bucket=loc.bucket, Key=loc.key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
            return False
        raise
    return True


def safe_relative(rel: str, uri: str) -> PurePosixPath:
    """A key's path under its prefix; refuses anything that could escape the local root."""
    posix = PurePosixPath(rel.replace("\\", "/"))
    if not rel or posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        raise DataError(uri, f"unsafe member path {rel!r} (absolute or '..') refused")
    return posix


# --- small reads and writes ---------------------------------------------------------------------


def read_bytes(uri: str | Path) -> bytes:
    loc = parse(uri)
    if not loc.is_s3:
        if not loc.path.is_file():
            raise DataError(loc.path, "file not found")
        return loc.path.read_bytes()
    with _s3_errors(loc.uri, "read object"):
        return bytes(_client().get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read())


def write_bytes(uri: str | Path, data: bytes) -> None:
    """Whole-object write; a local file is replaced atomically (temp file + rename)."""
    loc = parse(uri)
    if not loc.is_s3:
        loc.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = loc.path.with_name(f".{loc.path.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, loc.path)
        return
    with _s3_errors(loc.uri, "write object"):
        _client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data)


def exists(uri: str | Path) -> bool:
    """A file or a non-empty folder/prefix is there. A missing bucket or refused access is an
    error, not False: the question could not be answered."""
    loc = parse(uri)
    if not loc.is_s3:
        return loc.path.exists()
    client = _client()
    with _s3_errors(loc.uri, "check object"):
        if _is_object(client, loc):
            return True
        page = client.list_objects_v2(Bucket=loc.bucket, Prefix=loc.prefix, MaxKeys=1)
        return bool(page.get("KeyCount", 0))


def list_files(uri: str | Path) -> list[str]:
    """Relative paths (posix, sorted) of the files under a folder or S3 prefix."""
    loc = parse(uri)
    if not loc.is_s3:
        root = loc.path
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    with _s3_errors(loc.uri, "list prefix"):
        return sorted(_objects(_client(), str(loc.bucket), loc.prefix))


def object_listing(uri: str) -> list[tuple[str, str, int]]:
    """(path under the prefix, ETag, size) of every object under an s3:// prefix, sorted: what
    changes whenever an object is added, removed or rewritten, without reading any of them."""
    loc = parse(uri)
    if not loc.is_s3:
        raise DataError(uri, "an object listing needs an s3://bucket/prefix")
    with _s3_errors(loc.uri, "list prefix"):
        objects = _objects(_client(), str(loc.bucket), loc.prefix)
    return sorted((rel, str(obj["ETag"]).strip('"'), int(obj["Size"])) for rel, obj in objects.items())


def download(uri: str, dest: Path, what: str = "object") -> Path:
    """One S3 object to `dest` (written to a temp name, then renamed: never a half file);
    `what` names it in the error ("pretrained weights")."""
    loc = parse(uri)
    if not loc.is_s3:
        raise ValueError(f"download needs an s3:// URI, found {uri!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with _s3_errors(loc.uri, f"download {what}"):
            _client().download_file(loc.bucket, loc.key, str(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# --- mirroring S3 → local ---------------------------------------------------------------------


def _index_path(cache_dir: Path, bucket: str, key: str) -> Path:
    return cache_dir / "s3-index" / f"{bucket}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _read_index(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_index(path: Path, index: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(index, sort_keys=True))
    os.replace(tmp, path)


def _sync_object(
    client: Any, bucket: str, obj: dict[str, Any], dest: Path, cached: dict[str, Any] | None, stats: dict[str, int]
) -> dict[str, Any]:
    """Download unless the cached copy has the same ETag and size; returns the index entry.
    The file gets the object's LastModified as mtime, so (size, mtime) change checks keep working."""
    entry = {"etag": obj["ETag"], "size": int(obj["Size"])}
    if (
        cached
        and {k: cached.get(k) for k in entry} == entry
        and dest.is_file()
        and dest.stat().st_size == entry["size"]
    ):
        stats["skipped"] += 1
        return cached
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        client.download_file(bucket, obj["Key"], str(tmp))
        stamp = obj["LastModified"].timestamp()
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, dest)  # a new inode: hard links to the old copy keep their bytes
    finally:
        tmp.unlink(missing_ok=True)  # never leave a partial download behind
    stats["downloaded"] += 1
    return entry


def mirror_prefix(uri: str, cache_dir: Path, *, allow_empty: bool = False) -> Mirror:
    """Mirror every object under an S3 prefix into `cache_dir/s3/<bucket>/<prefix>`: same layout
    as the prefix, unchanged objects skipped, objects deleted upstream deleted here too."""
    loc = parse(uri)
    bucket, prefix = str(loc.bucket), loc.prefix
    root = Path(cache_dir) / "s3" / bucket / prefix
    index_path = _index_path(Path(cache_dir), bucket, prefix)
    index = _read_index(index_path)
    stats = {"downloaded": 0, "skipped": 0, "removed": 0}
    client = _client()
    with _s3_errors(loc.uri, "read S3 prefix"):
        objects = _objects(client, bucket, prefix)
        fresh = {}
        for rel, obj in objects.items():
            member = str(safe_relative(rel, loc.uri))
            fresh[member] = _sync_object(client, bucket, obj, root / member, index.get(member), stats)
    for stale in set(index) - set(fresh):  # deleted upstream: must not be read again
        (root / stale).unlink(missing_ok=True)
        stats["removed"] += 1
    _write_index(index_path, fresh)
    if not fresh and not allow_empty:
        raise DataError(loc.uri, "no objects under this S3 prefix")
    root.mkdir(parents=True, exist_ok=True)
    return Mirror(root, len(fresh), stats)


def _mirror_file(client: Any, loc: Location, cache_dir: Path) -> Mirror:
    bucket = str(loc.bucket)
    dest = Path(cache_dir) / "s3" / bucket / loc.key
    index_path = _index_path(Path(cache_dir), bucket, loc.key)
    stats = {"downloaded": 0, "skipped": 0, "removed": 0}
    head = client.head_object(Bucket=bucket, Key=loc.key)
    obj = {"Key": loc.key, "ETag": head["ETag"], "Size": head["ContentLength"], "LastModified": head["LastModified"]}
    entry = _sync_object(client, bucket, obj, dest, _read_index(index_path).get(""), stats)
    _write_index(index_path, {"": entry})
    return Mirror(dest, 1, stats)


def fetch(uri: str | Path, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """A local path holding `uri`: a local path as is; an S3 object as a cached file; an S3 prefix
    as a cached folder with the prefix's layout (what a previous stage published as a folder)."""
    loc = parse(uri)
    if not loc.is_s3:
        if not loc.path.exists():
            raise DataError(loc.path, "no such file or folder")
        return loc.path
    client = _client()
    with _s3_errors(loc.uri, "read"):
        if _is_object(client, loc):
            return _mirror_file(client, loc, cache_dir).root
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


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(_MD5_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _unchanged(path: Path, remote: dict[str, Any] | None) -> bool:
    """Same bytes already there? A single-part ETag is the MD5; multipart ETags never match (→ upload)."""
    return remote is not None and int(remote["Size"]) == path.stat().st_size and remote["ETag"].strip('"') == _md5(path)


def publish(local: str | Path, uri: str | Path, *, delete: bool = False) -> dict[str, int]:
    """Copy a file or folder to `uri` (a local path: plain copy; S3: upload, skipping objects that
    already hold the same bytes). `delete` also removes what is under the prefix but not in the
    folder, so the prefix then mirrors it exactly. Returns counts for the log."""
    src, loc = Path(local), parse(uri)
    if not src.exists():
        raise DataError(src, "nothing to publish: no such file or folder")
    if not loc.is_s3:
        if src.resolve() != loc.path.resolve():
            if src.is_dir():
                shutil.copytree(src, loc.path, dirs_exist_ok=True)
            else:
                loc.path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, loc.path)
        return {"uploaded": 0, "unchanged": 0, "deleted": 0}
    files = (
        {"": src}
        if src.is_file()
        else {p.relative_to(src).as_posix(): p for p in sorted(src.rglob("*")) if p.is_file()}
    )
    prefix = loc.key if src.is_file() else loc.prefix
    stats = {"uploaded": 0, "unchanged": 0, "deleted": 0}
    client = _client()
    with _s3_errors(loc.uri, "publish"):
        remote = _objects(client, str(loc.bucket), prefix) if src.is_dir() else {}
        for rel, path in files.items():
            if _unchanged(path, remote.get(rel)):
                stats["unchanged"] += 1
                continue
            client.upload_file(str(path), loc.bucket, prefix + rel)
            stats["uploaded"] += 1
        stale = sorted(set(remote) - set(files)) if delete else []
        for start in range(0, len(stale), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": prefix + rel} for rel in stale[start : start + 1000]]
            client.delete_objects(Bucket=loc.bucket, Delete={"Objects": batch, "Quiet": True})
        stats["deleted"] = len(stale)
    return stats


def _forget(loc: Location, cache_dir: Path, is_file: bool) -> None:
    """Drop a mirror whose files a failed stage may have half rewritten: the next run starts from S3."""
    key = loc.key if is_file else loc.prefix
    _index_path(Path(cache_dir), str(loc.bucket), key).unlink(missing_ok=True)
    target = Path(cache_dir) / "s3" / str(loc.bucket) / key
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def _remember(loc: Location, cache_dir: Path, local: Path, is_file: bool) -> None:
    """After publishing, record the uploaded ETags so the next fetch of this URI downloads nothing."""
    bucket, key = str(loc.bucket), loc.key if is_file else loc.prefix
    client = _client()
    with _s3_errors(loc.uri, "list published objects"):
        if is_file:
            head = client.head_object(Bucket=bucket, Key=key)
            objects = {"": {"ETag": head["ETag"], "Size": head["ContentLength"]}}
        else:
            objects = _objects(client, bucket, key)
    index = {}
    for rel, obj in objects.items():
        path = local / rel if rel else local
        if path.is_file() and path.stat().st_size == int(obj["Size"]):
            index[rel] = {"etag": obj["ETag"], "size": int(obj["Size"])}
    _write_index(_index_path(Path(cache_dir), bucket, key), index)


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
    if is_file:
        client = _client()
        with _s3_errors(loc.uri, "read"):
            client.list_objects_v2(Bucket=loc.bucket, Prefix=loc.key, MaxKeys=1)  # NoSuchBucket now, not after
            found = _is_object(client, loc)
            target = (
                _mirror_file(client, loc, cache_dir).root
                if found
                else Path(cache_dir) / "s3" / str(loc.bucket) / loc.key
            )
        if not found:  # the first run: nothing there yet (a stale local copy must not be uploaded)
            target.unlink(missing_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
    else:
        target = mirror_prefix(loc.uri, cache_dir, allow_empty=True).root
    try:
        yield target
    except BaseException:
        _forget(loc, cache_dir, is_file)
        raise
    if publish_on_success and target.exists():
        publish(target, loc.uri, delete=not is_file)
        _remember(loc, cache_dir, target, is_file)
