"""Claim: the storage layer publishes and mirrors thousands of small patch JPEGs many times faster than
one request at a time, as the boto3 code before s3fs did.

Writes `--n` 64x64 JPEG patches (q90, ~3–4 KB, gradients plus noise) and starts a moto S3 server on
loopback in its own process (in this process it would share the GIL with the client being timed),
found by the code only through AWS_ENDPOINT_URL_S3, as in the tests. `--latency-ms` makes the server
wait that long before each answer, as a real endpoint's round trip does (S3 from a cluster: tens of
ms for a small object); at 0 moto's own CPU time per request is all there is. Times, in one run:

* upload: a sequential boto3 `put_object` loop (one request at a time, the old code's pattern; it
  used `upload_file`, which adds s3transfer overhead per file) vs `storage.publish` to a fresh prefix;
* download: a sequential boto3 `get_object` loop into a folder vs `storage.mirror_prefix` into a
  fresh cache (both from the published prefix; the mirror's bytes are checked against the source);
* the same publish and mirror again with nothing changed (MD5 vs ETag, and the cache index).

    .venv/bin/python benchmarks/s3_transfer.py [--n 5000] [--latency-ms 0] [--size 64] [--seed 0] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from components.common import s3, storage

BUCKET = "lesionops-bench"
console = Console()


def make_patches(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    """Patch-like JPEGs in class folders (as crop_patches writes them)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    paths = []
    for i in range(n):
        phase = rng.uniform(0, 255, 3)
        base = np.stack([(xx * 2 + phase[0]) % 256, (yy * 3 + phase[1]) % 256, (xx + yy + phase[2]) % 256], axis=2)
        pixels = base * 0.6 + 60 + rng.normal(0, rng.uniform(25, 45), base.shape)
        path = folder / f"class_{i % 5}" / f"patch_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def serve(port: int, latency_s: float) -> None:
    """moto's S3 app (as `python -m moto.server` builds it), each answer `latency_s` late."""
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    app = DomainDispatcherApplication(create_backend_app)

    def late(environ: dict[str, Any], start_response: Any) -> Any:
        time.sleep(latency_s)  # sleeps outside the GIL: concurrent requests wait together, as on a network
        return app(environ, start_response)

    run_simple("127.0.0.1", port, late, threaded=True, request_handler=MotoRequestHandler)


def start_moto(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    """The server in its own process on a free loopback port, once it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port), str(latency_ms / 1000)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
            return server, endpoint
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"moto server did not start on {endpoint}")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def sequential_upload(client: Any, folder: Path, files: list[Path], prefix: str) -> None:
    for path in files:
        client.put_object(Bucket=BUCKET, Key=prefix + path.relative_to(folder).as_posix(), Body=path.read_bytes())


def sequential_download(client: Any, prefix: str, out: Path) -> int:
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    for key in keys:
        dest = out / key[len(prefix) :]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return len(keys)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="patches")
    parser.add_argument("--size", type=int, default=64, help="patch side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="server delay per request")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    server, endpoint = start_moto(args.latency_ms)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    import boto3

    try:
        with tempfile.TemporaryDirectory(prefix="lesionops-bench-s3-") as tmp:
            work = Path(tmp)
            files = make_patches(work / "patches", args.n, args.size, args.seed)
            mb = sum(p.stat().st_size for p in files) / 1e6
            client = boto3.client("s3")
            client.create_bucket(Bucket=BUCKET)
            uri = f"s3://{BUCKET}/publish"
            rows: dict[str, dict[str, Any]] = {}

            def row(name: str, seconds: float, moved: int) -> None:
                rows[name] = {"seconds": seconds, "files": moved, "files_per_s": args.n / seconds}

            s, _ = timed(lambda: sequential_upload(client, work / "patches", files, "sequential/"))
            row("upload: boto3 put_object loop", s, args.n)
            s, stats = timed(lambda: storage.publish(work / "patches", uri))
            row("upload: storage.publish", s, stats["uploaded"])
            s, n_seq = timed(lambda: sequential_download(client, "publish/", work / "sequential-download"))
            row("download: boto3 get_object loop", s, n_seq)
            s, mirror = timed(lambda: storage.mirror_prefix(uri, work / "cache"))
            row("download: storage.mirror_prefix", s, mirror.stats["downloaded"])
            s, again = timed(lambda: storage.publish(work / "patches", uri))
            row("publish again, nothing changed", s, again["uploaded"])
            s, remirror = timed(lambda: storage.mirror_prefix(uri, work / "cache"))
            row("mirror again, nothing changed", s, remirror.stats["downloaded"])

            same = all((mirror.root / p.relative_to(work / "patches")).read_bytes() == p.read_bytes() for p in files)
    finally:
        server.terminate()
        server.wait(timeout=30)

    console.print(
        f"{args.n} JPEG patches {args.size}x{args.size} ({mb:.1f} MB, {mb * 1e3 / args.n:.1f} KB each); "
        f"moto S3 server on loopback in its own process, +{args.latency_ms:g} ms per request; {os.cpu_count()} CPU(s); "
        f"{s3.CONCURRENCY} transfers in flight"
    )
    grid = Table("what", "seconds", "files moved", "files/s")
    for name, r in rows.items():
        grid.add_row(name, f"{r['seconds']:.2f}", str(r["files"]), f"{r['files_per_s']:.0f}")
    console.print(grid)
    up = rows["upload: boto3 put_object loop"]["seconds"] / rows["upload: storage.publish"]["seconds"]
    down = rows["download: boto3 get_object loop"]["seconds"] / rows["download: storage.mirror_prefix"]["seconds"]
    console.print(f"ratio publish/sequential = {up:.2f}x (files per second)")
    console.print(f"ratio mirror/sequential  = {down:.2f}x (files per second)")
    problems = [
        f"{name}: moved {r['files']} files, expected {args.n}"
        for name, r in rows.items()
        if "again" not in name and r["files"] != args.n
    ]
    problems += [
        f"{name}: moved {r['files']} files, expected 0" for name, r in rows.items() if "again" in name and r["files"]
    ]
    if not same:
        problems.append("the mirror's bytes differ from the published patches")
    if args.json:
        result = {"n": args.n, "latency_ms": args.latency_ms, "mb": round(mb, 2), "cpus": os.cpu_count(), "rows": rows}
        args.json.write_text(json.dumps({**result, "ratio_publish": up, "ratio_mirror": down}, indent=2) + "\n")
    if problems:
        console.print("[red]FAILED[/red]:\n" + "\n".join(problems))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
