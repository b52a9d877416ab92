"""The training data as a Kubeflow run sees it: its content fingerprint, and an S3 copy of a local
DVC-tracked folder.

The fingerprint is the run's `data_version`: ingest_data takes it as an input, so KFP's cache
reuses a manifest only for the same bytes. A local folder's is the md5 DVC records for it (what
`dvc add` writes into `<folder>.dvc`, computed from the files as they are now, so a stale .dvc file
cannot hide a change); an S3 prefix's is a sha256 over its sorted (key, ETag, size) listing,
which changes whenever an object is added, removed or rewritten, without reading any object.
S3 endpoint, region and credentials come from the standard AWS chain only (components.common.s3).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from components.common.errors import DataError


def fingerprint(source: str | Path) -> str:
    """`<dvc md5>.dir` of a local folder, or the sha256 of an s3:// prefix's listing."""
    text = str(source)
    if text.startswith("s3://"):
        return s3_fingerprint(text)
    return folder_fingerprint(Path(text.removeprefix("file://")))


def folder_fingerprint(folder: Path) -> str:
    """The md5 `dvc add` would record for `folder` (dvc-data's own tree hash, nothing stored)."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    if not folder.is_dir():
        raise DataError(folder, "data folder not found (expected a folder or s3://bucket/prefix)")
    fs = LocalFileSystem()
    with tempfile.TemporaryDirectory(prefix="lesionops-dvc-") as tmp:
        _, _, obj = build(HashFileDB(fs, tmp), str(folder.resolve()), fs, "md5", dry_run=True)
    return str(obj.hash_info.value)


def s3_fingerprint(uri: str) -> str:
    """sha256 over the sorted listing; refuses an empty prefix (nothing to train on)."""
    from components.common.storage import object_listing

    rows = object_listing(uri)
    if not rows:
        raise DataError(uri, "no objects under this S3 prefix")
    digest = hashlib.sha256()
    for key, etag, size in rows:
        digest.update(f"{key}\0{etag}\0{size}\n".encode())
    return digest.hexdigest()


def mirror_to_s3(folder: Path, uri: str) -> dict[str, Any]:
    """Make the s3:// prefix hold exactly the files of `folder` (uploading only what changed).

    Objects under the prefix that the folder does not have are refused, not deleted: a run must
    train on the DVC version it is labelled with, and a mistyped prefix must not cost anyone data.
    """
    from components.common.storage import list_files, publish

    if not folder.is_dir():
        raise DataError(folder, "data folder not found")
    local = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    extra = sorted(set(list_files(uri)) - local)
    if extra:
        raise DataError(
            uri,
            f"{len(extra)} object(s) are not in {folder} (e.g. {extra[:3]}); the prefix must "
            "hold only this DVC-tracked folder: remove them or set another kubeflow.source_uri",
        )
    return publish(folder, uri)
