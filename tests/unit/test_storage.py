"""The storage layer against a real S3 server (moto over HTTP on loopback) and on local paths.

The endpoint reaches the code only through AWS_ENDPOINT_URL_S3, as it would on a cluster with MinIO.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.common import storage
from components.common.cli import (
    base_parser,
    input_location,
    local_paths,
    output_file,
    output_location,
)
from components.common.errors import DataError

BUCKET = "lesionops-test"


@pytest.fixture()
def s3(s3_client: Any) -> str:
    """One bucket on the shared moto server (tests/conftest.py)."""
    s3_client.create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}"


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


FILES = {
    "patches.parquet": b"table",
    "train/psoriasis/p1.jpg": b"\xff\xd8one",
    "val/eczema/p2.jpg": b"\xff\xd8two",
    "crop_report.json": b"{}",
}


def test_file_round_trip_and_unchanged_object_not_downloaded_twice(s3: str, tmp_path: Path) -> None:
    uri = f"{s3}/runs/1/train_model/checkpoint.pt"
    storage.write_bytes(uri, b"weights v1")
    assert storage.read_bytes(uri) == b"weights v1" and storage.exists(uri)
    cached = storage.fetch(uri, tmp_path / "cache")
    assert cached.read_bytes() == b"weights v1" and cached.is_relative_to(tmp_path / "cache")
    inode = cached.stat().st_ino
    assert storage.fetch(uri, tmp_path / "cache").stat().st_ino == inode  # not downloaded again
    storage.write_bytes(uri, b"weights v2")
    again = storage.fetch(uri, tmp_path / "cache")
    assert again.read_bytes() == b"weights v2" and again.stat().st_ino != inode


def test_folder_round_trip_keeps_the_layout_and_syncs_only_changes(s3: str, tmp_path: Path) -> None:
    uri = f"{s3}/runs/1/crop_patches"
    src = _tree(tmp_path / "patches", FILES)
    assert storage.publish(src, uri) == {"uploaded": 4, "unchanged": 0, "deleted": 0}
    assert storage.list_files(uri) == sorted(FILES) and storage.exists(uri)

    first = storage.mirror_prefix(uri, tmp_path / "cache")
    assert _read_tree(first.root) == FILES and first.stats["downloaded"] == 4
    assert storage.fetch(f"{uri}/", tmp_path / "cache") == first.root  # a prefix fetches as a folder
    second = storage.mirror_prefix(uri, tmp_path / "cache")
    assert second.stats == {"downloaded": 0, "skipped": 4, "removed": 0}

    (src / "val" / "eczema" / "p2.jpg").unlink()
    (src / "crop_report.json").write_bytes(b'{"n": 3}')
    assert storage.publish(src, uri, delete=True) == {"uploaded": 1, "unchanged": 2, "deleted": 1}
    third = storage.mirror_prefix(uri, tmp_path / "cache")
    assert third.stats == {"downloaded": 1, "skipped": 2, "removed": 1}
    assert _read_tree(third.root) == _read_tree(src)


def test_local_output_publishes_on_success_and_sees_the_previous_output(s3: str, tmp_path: Path) -> None:
    uri, cache = f"{s3}/runs/2/ingest_data", tmp_path / "cache"
    with storage.local_output(uri, cache) as out:
        assert out.is_dir() and not any(out.iterdir())
        _tree(out, {"manifest.parquet": b"m1", "ingest_report.json": b"{}"})
    assert storage.list_files(uri) == ["ingest_report.json", "manifest.parquet"]
    with storage.local_output(uri, cache) as out:  # an incremental stage reads its last output
        assert (out / "manifest.parquet").read_bytes() == b"m1"
        (out / "ingest_report.json").unlink()
        (out / "manifest.parquet").write_bytes(b"m2")
    assert storage.list_files(uri) == ["manifest.parquet"] and storage.read_bytes(f"{uri}/manifest.parquet") == b"m2"
    assert storage.mirror_prefix(uri, cache).stats["downloaded"] == 0  # what was published is known


def test_local_output_publishes_nothing_when_the_stage_fails(s3: str, tmp_path: Path) -> None:
    uri, cache = f"{s3}/runs/3/evaluate_model", tmp_path / "cache"
    storage.publish(_tree(tmp_path / "old", {"metrics.json": b"old"}), uri)
    with pytest.raises(RuntimeError, match="stage broke"), storage.local_output(uri, cache) as out:
        (out / "metrics.json").write_bytes(b"half written")
        (out / "decision.json").write_bytes(b"{}")
        raise RuntimeError("stage broke")
    assert storage.list_files(uri) == ["metrics.json"] and storage.read_bytes(f"{uri}/metrics.json") == b"old"
    assert storage.fetch(uri, cache).joinpath("metrics.json").read_bytes() == b"old"  # the dirty mirror was dropped


def test_output_file_is_read_then_rewritten(s3: str, tmp_path: Path) -> None:
    uri = f"{s3}/monitor/history.json"
    with storage.local_output(uri, tmp_path / "cache", is_file=True) as path:
        assert not path.exists()  # the first run
        path.write_text("[1]")
    with storage.local_output(uri, tmp_path / "cache", is_file=True) as path:
        assert path.read_text() == "[1]"
        path.write_text("[1, 2]")
    assert storage.read_bytes(uri) == b"[1, 2]"


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (
            lambda tmp: storage.read_bytes("s3://no-such-bucket/a.json"),
            r"^s3://no-such-bucket/a\.json: .*bucket does not exist",
        ),
        (
            lambda tmp: storage.read_bytes(f"s3://{BUCKET}/missing.json"),
            rf"^s3://{BUCKET}/missing\.json: .*no such object",
        ),
        (lambda tmp: storage.fetch("s3://no-such-bucket/runs/1", tmp / "c"), r"^s3://no-such-bucket/runs/1: .*bucket"),
        (
            lambda tmp: storage.fetch(f"s3://{BUCKET}/runs/none", tmp / "c"),
            rf"^s3://{BUCKET}/runs/none: no such object",
        ),
        (lambda tmp: storage.exists("s3://no-such-bucket/x"), r"^s3://no-such-bucket/x: .*bucket does not exist"),
        (
            lambda tmp: storage.publish(Path(__file__), "s3://no-such-bucket/x.py"),
            r"^s3://no-such-bucket/x\.py: .*bucket",
        ),
        (lambda tmp: storage.parse("gs://bucket/x"), r"^gs://bucket/x: unsupported location"),
    ],
)
def test_errors_name_the_uri_and_the_problem(s3: str, tmp_path: Path, call: Any, problem: str) -> None:
    with pytest.raises(DataError, match=problem):
        call(tmp_path)


def test_missing_output_bucket_fails_before_the_stage_runs(s3: str, tmp_path: Path) -> None:
    ran = []
    with (
        pytest.raises(DataError, match=r"^s3://no-such-bucket/out: .*bucket does not exist"),
        storage.local_output("s3://no-such-bucket/out", tmp_path / "cache"),
    ):
        ran.append(True)
    assert not ran


class _Watch:
    """WSGI middleware in front of moto's app: records each request, the most in flight at once;
    object requests wait `delay` s (a network round trip) and GETs of keys ending in `deny` get S3's
    403 AccessDenied."""

    def __init__(self, app: Any, delay: float = 0.0, deny: str | None = None) -> None:
        self.app, self.delay, self.deny = app, delay, deny
        self.lock, self.in_flight, self.most = threading.Lock(), 0, 0
        self.calls: list[tuple[str, str]] = []

    def object_calls(self, method: str) -> list[str]:
        return [path for m, path in self.calls if m == method and path.count("/") >= 2]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        with self.lock:
            self.calls.append((method, path))
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            if method == "GET" and self.deny and path.endswith(self.deny):
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"]
            if path.count("/") >= 2:
                time.sleep(self.delay)
            return self.app(environ, start_response)
        finally:
            with self.lock:
                self.in_flight -= 1


@contextlib.contextmanager
def _server(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0, deny: str | None = None) -> Iterator[_Watch]:
    """Another moto server on loopback (moto's state is per process: it sees the fixture's buckets),
    watched, named to the code under test through AWS_ENDPOINT_URL_S3 only."""
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    watch = _Watch(DomainDispatcherApplication(create_backend_app), delay, deny)
    server = make_server("127.0.0.1", 0, watch, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with monkeypatch.context() as env:  # the fixture's endpoint again afterwards
            env.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.server_address[1]}")
            yield watch
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_publish_and_mirror_move_many_files_at_once(s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri, cache = f"{s3}/runs/6/crop_patches", tmp_path / "cache"
    files = {f"train/c{i % 3}/p{i:02d}.jpg": bytes([i]) * 300 for i in range(40)}
    with _server(monkeypatch, delay=0.05) as watch:
        assert storage.publish(_tree(tmp_path / "patches", files), uri)["uploaded"] == 40
        assert len(watch.object_calls("PUT")) == 40 and watch.most >= 4  # not one request at a time
    with _server(monkeypatch, delay=0.05) as watch:
        assert storage.mirror_prefix(uri, cache).stats["downloaded"] == 40
        assert len(watch.object_calls("GET")) == 40 and watch.most >= 4
    assert _read_tree(cache / "s3" / BUCKET / "runs/6/crop_patches") == files
    with _server(monkeypatch) as watch:
        assert storage.mirror_prefix(uri, cache).stats == {"downloaded": 0, "skipped": 40, "removed": 0}
        assert storage.publish(tmp_path / "patches", uri)["unchanged"] == 40
        assert watch.object_calls("GET") == [] and watch.object_calls("PUT") == []  # listings only


def test_a_failed_download_moves_nothing_into_the_mirror(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, cache = f"{s3}/runs/7/ingest_data", tmp_path / "cache"
    storage.publish(_tree(tmp_path / "out", FILES), uri)
    with (
        _server(monkeypatch, deny="p2.jpg"),
        pytest.raises(DataError, match=rf"^{uri}: cannot read S3 prefix: access denied .*\[S3 AccessDenied\]"),
    ):
        storage.mirror_prefix(uri, cache)
    assert [p for p in cache.rglob("*") if p.is_file()] == []  # no copy, no partial file, no index
    assert storage.mirror_prefix(uri, cache).stats["downloaded"] == len(FILES)


def test_delete_takes_keys_literally(s3: str, tmp_path: Path) -> None:
    """`[1]` is a glob character class: s3fs `rm` would delete p1.jpg for it."""
    uri, src = f"{s3}/runs/8/out", _tree(tmp_path / "out", {"p[1].jpg": b"a", "p1.jpg": b"b"})
    storage.publish(src, uri)
    (src / "p[1].jpg").unlink()
    assert storage.publish(src, uri, delete=True) == {"uploaded": 0, "unchanged": 1, "deleted": 1}
    assert storage.list_files(uri) == ["p1.jpg"]


def test_a_new_endpoint_is_used_at_once(s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No client is kept for an endpoint that is gone (s3fs caches instances by their arguments)."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with _server(monkeypatch) as watch:
        storage.write_bytes(f"{s3}/a.json", b"1")
    assert watch.object_calls("PUT")  # that server took the write; it is stopped now
    assert storage.read_bytes(f"{s3}/a.json") == b"1" and storage.list_files(s3) == ["a.json"]  # the fixture's


def test_transfers_print_nothing_off_a_terminal(s3: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    storage.publish(_tree(tmp_path / "out", FILES), f"{s3}/quiet")
    storage.mirror_prefix(f"{s3}/quiet", tmp_path / "cache")
    assert capfd.readouterr() == ("", "")  # a progress bar is for a terminal, not for logs


def test_unreachable_endpoint_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
    }.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DataError, match=r"^s3://b/k: cannot read object: Could not connect"):
        storage.read_bytes("s3://b/k")


def test_local_paths_work_unchanged(tmp_path: Path) -> None:
    folder = _tree(tmp_path / "in", FILES)
    assert storage.local_input(folder) == folder and storage.local_input(str(folder)) == folder
    assert storage.fetch(folder.as_uri()) == folder
    assert storage.parse(f"file://{tmp_path}/a%20b").path == tmp_path / "a b"
    assert storage.list_files(folder) == sorted(FILES) and storage.exists(folder)
    with storage.local_output(tmp_path / "out") as out:
        assert out == tmp_path / "out"
    storage.write_bytes(tmp_path / "x" / "y.bin", b"z")
    assert storage.read_bytes(tmp_path / "x" / "y.bin") == b"z"
    storage.publish(folder, tmp_path / "copy")
    assert _read_tree(tmp_path / "copy") == FILES
    with pytest.raises(DataError, match="file not found"):
        storage.read_bytes(tmp_path / "nope")


def _stage_parser() -> argparse.ArgumentParser:
    parser = base_parser("a stage")
    parser.add_argument("--model", type=input_location, required=True)
    parser.add_argument("--out", type=output_location, required=True)
    parser.add_argument("--history", type=output_file)
    return parser


def test_cli_turns_uris_into_local_paths_and_publishes_after_success(s3: str, tmp_path: Path) -> None:
    storage.publish(
        _tree(tmp_path / "model", {"checkpoint.pt": b"w", "train_summary.json": b"{}"}), f"{s3}/runs/4/train_model"
    )
    argv = [
        "--model",
        f"{s3}/runs/4/train_model",
        "--out",
        f"{s3}/runs/4/evaluate_model",
        "--history",
        f"{s3}/runs/4/history.json",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    with local_paths(_stage_parser(), argv) as args:
        assert isinstance(args.model, Path) and (args.model / "checkpoint.pt").read_bytes() == b"w"
        (args.out / "metrics.json").write_text("{}")
        args.history.write_text("[]")
        assert storage.list_files(f"{s3}/runs/4/evaluate_model") == []  # nothing before the stage ends
    assert storage.list_files(f"{s3}/runs/4/evaluate_model") == ["metrics.json"]
    assert storage.read_bytes(f"{s3}/runs/4/history.json") == b"[]"

    with (
        pytest.raises(DataError),
        local_paths(
            _stage_parser(), [*argv[:2], "--out", f"{s3}/runs/5/out", "--cache-dir", str(tmp_path / "cache")]
        ) as args,
    ):
        (args.out / "metrics.json").write_text("{}")
        raise DataError("x.json", "bad input")
    assert storage.list_files(f"{s3}/runs/5/out") == []


def test_cli_only_rank_zero_publishes(s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")  # what torchrun sets on the second process
    storage.write_bytes(f"{s3}/m/checkpoint.pt", b"w")
    argv = ["--model", f"{s3}/m", "--out", f"{s3}/ddp/out", "--cache-dir", str(tmp_path / "cache")]
    with local_paths(_stage_parser(), argv) as args:
        (args.out / "rank1.txt").write_text("x")
    assert storage.list_files(f"{s3}/ddp/out") == []


def test_cli_refuses_an_unknown_scheme_as_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc, local_paths(_stage_parser(), ["--model", "gs://b/m", "--out", "o"]):
        pass
    assert exc.value.code == 2 and "unsupported location" in capsys.readouterr().err
