"""The S3 client under the storage layer (storage.py holds the rules: mirrors, publishing, caches).

s3fs lists prefixes and moves many files at once (`CONCURRENCY` in flight), which thousands of small
patch JPEGs need. Endpoint, region and credentials come only from the standard AWS chain
(AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID…, ~/.aws, instance
roles): s3fs is given none of them, and botocore under it reads the endpoint variables itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from rich import get_console
from rich.progress import Progress

from components.common.errors import DataError

CONCURRENCY = 32  # files in flight in one transfer, and the client's connection pool to match
_WHY = {  # S3 error codes → what a user should check
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "no such object",
    "404": "no such object (or no such bucket)",
    "AccessDenied": "access denied (check the credentials and the bucket policy)",
    "403": "access denied (check the credentials and the bucket policy)",
    "InvalidAccessKeyId": "the access key is not known to this endpoint",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
}
_SESSIONS: dict[int, Any] = {}  # pid → aiobotocore session (see filesystem)


def filesystem() -> Any:
    """A new filesystem (client, connection pool) per operation, created on use, never at import
    and never s3fs's instance cache: that is keyed on arguments, not on the endpoint the environment
    names, so it would keep a pool for an endpoint that is gone (tests start a server per test). No
    listing cache: ETags must be fresh. One aiobotocore session (credential chain, service models)
    per process, as boto3's default session was, so a new client costs milliseconds."""
    # Imported on use: s3fs (aiobotocore, aiohttp) takes ~1 s, and runs on local paths never need it.
    import s3fs
    from aiobotocore.session import AioSession

    if (session := _SESSIONS.get(os.getpid())) is None:
        session = _SESSIONS[os.getpid()] = AioSession()
    return s3fs.S3FileSystem(
        session=session,
        skip_instance_cache=True,
        use_listings_cache=False,
        config_kwargs={"max_pool_connections": CONCURRENCY},
    )


@contextlib.contextmanager
def errors(uri: str, action: str) -> Iterator[None]:
    """Any S3 or connection failure → DataError naming the URI and what to check. s3fs raises an
    OSError with botocore's ClientError as its cause or context; an OSError without one is a local
    file problem and propagates as it is."""
    from botocore.exceptions import BotoCoreError, ClientError  # comes with s3fs: on use, like it

    try:
        yield
    except (OSError, ClientError) as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ClientError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        code = str(cause.response.get("Error", {}).get("Code", "?"))
        raise DataError(uri, f"cannot {action}: {_WHY.get(code, 'S3 refused the request')} [S3 {code}]") from exc
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, …
        raise DataError(uri, f"cannot {action}: {exc}") from exc


@contextlib.contextmanager
def progress(what: str) -> Iterator[Any]:
    """A rich bar as an fsspec callback (files done, or one file's bytes), on a terminal only and
    gone when done: logs and tests get nothing (a transient bar still prints a newline there)."""
    from fsspec.callbacks import Callback  # comes with s3fs: on use, like it

    with Progress(transient=True, disable=not get_console().is_terminal) as bar:
        task = bar.add_task(what, total=None)
        yield Callback(hooks={"bar": lambda size, value, **_: bar.update(task, total=size, completed=value)})


def objects(fs: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Objects under `prefix` (s3fs info: ETag, size, LastModified) by path relative to it, folder
    markers left out: one paginated listing (`prefix=`: no probing the key as a file when empty)."""
    root = f"{bucket}/{prefix}"
    found = fs.find(bucket, prefix=prefix, detail=True)
    return {k[len(root) :]: v for k, v in found.items() if k.startswith(root) and k != root and not k.endswith("/")}


def head(fs: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object at `key`, as `objects` shows it; None on a 404: the key may still be a prefix (a
    missing bucket is a 404 too, and the listing that follows names it)."""
    if not key or key.endswith("/"):
        return None
    try:
        found = fs.call_s3("head_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return None
    info = {"ETag": found["ETag"], "size": found["ContentLength"], "LastModified": found["LastModified"]}
    return {"name": f"{bucket}/{key}", **info}


def delete(fs: Any, bucket: str, keys: list[str]) -> None:
    """DeleteObjects, 1000 keys a call (its limit); not s3fs `rm`, which expands glob characters a
    key may hold ("[", "*"). A key S3 refused to delete is an error, not a silent leftover."""
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        out = fs.call_s3("delete_objects", Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        for error in out.get("Errors", [])[:1]:
            why = f"cannot delete: {error.get('Message')} [S3 {error.get('Code')}]"
            raise DataError(f"s3://{bucket}/{error.get('Key')}", why)
