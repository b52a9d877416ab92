"""Claim: `ingest_data` proves every JPEG decodes (truncation check) at a fraction of a full decode.

`components.common.images.probe` decodes JPEGs at 1/8 scale with Pillow's `draft`, which still
reads all entropy-coded data (so truncated files fail) but skips most of the IDCT and colour work.
This script times `probe` against the naive check (`Image.open(...).load()` at full size) on the
same generated clinic-sized photos, in one process, and prints images/s for both and the ratio.

    .venv/bin/python benchmarks/ingest_probe.py [--n 40] [--width 3000] [--height 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from components.common.errors import DataError
from components.common.images import probe


def make_photos(folder: Path, n: int, width: int, height: int) -> list[Path]:
    rng = np.random.default_rng(0)
    base = rng.integers(90, 200, size=(height // 8, width // 8, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        small = Image.fromarray(np.roll(base, i * 7, axis=1))
        img = small.resize((width, height), Image.Resampling.BILINEAR)
        path = folder / f"photo_{i:03d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def naive(path: Path) -> None:
    with Image.open(path) as img:
        img.load()


def timed(fn, paths: list[Path]) -> float:
    start = time.perf_counter()
    for p in paths:
        fn(p)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_photos(Path(tmp), args.n, args.width, args.height)
        truncated = Path(tmp) / "truncated.jpg"
        raw = paths[0].read_bytes()
        truncated.write_bytes(raw[: len(raw) // 2])
        try:
            probe(truncated)
            raise SystemExit("probe accepted a truncated JPEG: the speed-up would be unsafe")
        except DataError:
            pass
        timed(naive, paths[:3])  # warm-up: file cache and libjpeg tables
        full = timed(naive, paths)
        fast = timed(probe, paths)
    print(f"{args.n} JPEGs of {args.width}x{args.height}")
    print(f"naive full decode : {full:8.1f} images/s")
    print(f"probe (draft 1/8) : {fast:8.1f} images/s")
    print(f"ratio             : {fast / full:8.2f}x (truncated file still detected)")


if __name__ == "__main__":
    main()
