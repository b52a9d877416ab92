"""The DVC remote on S3: push a dataset version, lose every local copy, pull the same bytes back.

Runs `lesionops data remote/track --push/pull` (the commands a user types) against a
real S3 server on loopback; the endpoint reaches DVC only through AWS_ENDPOINT_URL_S3, as it
would on a cluster with MinIO.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BUCKET = "lesionops-dvc"


@pytest.fixture()
def s3_endpoint(s3_client: object) -> str:
    """One empty bucket on the shared moto server (tests/conftest.py)."""
    s3_client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    return s3_client.meta.endpoint_url  # type: ignore[attr-defined]


def _lesionops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lesionops")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy())


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_push_then_pull_restores_the_exact_dataset(s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    repo = tmp_path / "clinic"
    (repo / "data" / "images").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    for i in range(3):
        (repo / "data" / "images" / f"p{i}.jpg").write_bytes(os.urandom(2048))
    (repo / "data" / "metadata.csv").write_text("image,patient\np0.jpg,a\np1.jpg,b\np2.jpg,c\n")
    before = _digest(repo / "data")

    remote = _lesionops("data", "remote", f"s3://{BUCKET}/lesionops", cwd=repo)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    config = (repo / ".dvc" / "config").read_text()
    assert f"s3://{BUCKET}/lesionops" in config
    assert "127.0.0.1" not in config and "testing" not in config  # endpoint and keys stay out of git

    tracked = _lesionops("data", "track", "data", "--push", cwd=repo)
    assert tracked.returncode == 0, tracked.stdout + tracked.stderr
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == 5 and all(k.startswith("lesionops/files/md5/") for k in keys)  # 4 files + .dir

    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    pulled = _lesionops("data", "pull", "data", cwd=repo)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert _digest(repo / "data") == before


def test_push_to_a_missing_bucket_says_so(s3_endpoint: str, tmp_path: Path) -> None:
    repo = tmp_path / "clinic"
    (repo / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "data" / "a.txt").write_text("a")
    assert _lesionops("data", "remote", "s3://no-such-bucket/x", cwd=repo).returncode == 0
    result = _lesionops("data", "track", "data", "--push", cwd=repo)
    assert result.returncode == 2
    assert "data track failed" in " ".join(result.stdout.split()) and "dvc push" in result.stdout
    assert (repo / "data.dvc").is_file()  # the local version is still pinned: nothing good is lost


def test_data_upload_copies_changes_only_and_refuses_a_foreign_prefix(s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    for i in range(3):
        (data / "images" / f"p{i}.jpg").write_bytes(os.urandom(512))
    target = f"s3://{BUCKET}/raw"
    first = _lesionops("data", "upload", str(data), target, cwd=tmp_path)
    assert first.returncode == 0 and "3 uploaded, 0 unchanged" in first.stdout, first.stdout + first.stderr
    (data / "images" / "p0.jpg").write_bytes(os.urandom(512))
    second = _lesionops("data", "upload", str(data), target, cwd=tmp_path)
    assert "1 uploaded, 2 unchanged" in second.stdout, second.stdout + second.stderr
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key="raw/images/p0.jpg")["Body"].read()
    assert body == (data / "images" / "p0.jpg").read_bytes()

    boto3.client("s3").put_object(Bucket=BUCKET, Key="raw/images/someone-elses.jpg", Body=b"x")
    refused = _lesionops("data", "upload", str(data), target, cwd=tmp_path)
    assert refused.returncode == 2 and "not in" in refused.stdout, refused.stdout
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="raw/")["Contents"]]
    assert "raw/images/someone-elses.jpg" in keys  # refused, not deleted
