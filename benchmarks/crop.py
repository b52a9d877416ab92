"""Claim: `python -m components.crop_patches` writes patches >= 3x faster than the naive crop loop.

Naive: for each box, one at a time, in one process, open the full photo with Pillow, load it,
convert to RGB, crop the box window (same margin, square, shifted inside), resize (BILINEAR), save
as JPEG. The stage decodes each photo once for all its boxes, at reduced scale (Pillow draft) when
the patch is much smaller than the box, on a process pool sized to the machine.

Generates (in parallel; cached under --cache while its marker matches the parameters) photo-like
JPEGs (q90, ~0.8 MB at 3000x2000) with labelImg VOC XMLs and a metadata.csv of patient ids, runs
the real `ingest_data` (decode: header) and `validate_annotations` (MLflow off) CLIs once (untimed,
cached), then times both approaches as child processes on the same accepted boxes, each into a
fresh folder, sampling the RSS of the child plus its descendants every 50 ms. Exits 1 if either
fails or writes a patch count other than the accepted boxes; the 3x target is printed, not asserted.

    .venv/bin/python benchmarks/crop.py [--images 2000] [--width 3000] [--height 2000]
        [--boxes-per-image 2 3] [--patch-size 64] [--seed 0] [--cache DIR] [--json FILE] [--keep]

Wall times are end to end (interpreter start and imports included: the stage imports scikit-learn,
~5 s here), so small `--images` runs understate the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml
from PIL import Image
from rich.console import Console
from rich.progress import track
from rich.table import Table

from components.common.voc import VocAnnotation, VocBox, write_voc

REPO = Path(__file__).resolve().parents[1]
_CANVAS: dict[str, Any] = {}  # built in the parent before the fork-started pool: shared copy-on-write
console = Console()


def _smooth(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Low-frequency noise in [0, 1): a coarse random grid upsampled bilinearly (skin-like shading)."""
    coarse = rng.random((max(h // cell, 2), max(w // cell, 2)), dtype=np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BILINEAR))


def _build_canvas(width: int, height: int, seed: int) -> None:
    """A 1.5x-size skin canvas (shading + pores + mild noise); each photo is a shifted, tinted crop."""
    rng = np.random.default_rng([seed, 0])
    ch, cw = height + height // 2, width + width // 2
    shade, detail = _smooth(rng, ch, cw, 250), _smooth(rng, ch, cw, 7)
    canvas = np.empty((ch, cw, 3), np.uint8)
    for c, skin in enumerate((205.0, 160.0, 135.0)):
        noise = rng.normal(0.0, 3.0, (ch, cw)).astype(np.float32)
        canvas[..., c] = np.clip(skin * (0.7 + 0.4 * shade) + 22.0 * (detail - 0.5) + noise, 0, 255)
    _CANVAS.update(canvas=canvas, width=width, height=height)


def _make_photo(job: tuple[int, int, int, str, str, int, int, int]) -> int:
    """Photo i of a patient: crop + tint, one reddish lesion per box; writes the JPEG and its VOC XML."""
    i, patient, k, label, folder, lo, hi, seed = job
    canvas: np.ndarray = _CANVAS["canvas"]
    w, h = int(_CANVAS["width"]), int(_CANVAS["height"])
    rng = np.random.default_rng([seed, 1, i])
    oy, ox = int(rng.integers(0, canvas.shape[0] - h + 1)), int(rng.integers(0, canvas.shape[1] - w + 1))
    img = canvas[oy : oy + h, ox : ox + w].copy()
    for c in range(3):  # per-photo tint through a lookup table: cheaper than a float pass
        lut = np.clip(np.arange(256) * rng.uniform(0.85, 1.1), 0, 255).astype(np.uint8)
        img[..., c] = lut[img[..., c]]
    boxes = []
    for _ in range(lo + i % (hi - lo + 1)):  # cycles lo..hi: (lo + hi) / 2 boxes per photo on average
        bw, bh = int(rng.integers(120, min(900, w - 2) + 1)), int(rng.integers(120, min(900, h - 2) + 1))
        x0, y0 = int(rng.integers(1, w - bw + 1)), int(rng.integers(1, h - bh + 1))  # 1-based
        region = img[y0 - 1 : y0 - 1 + bh, x0 - 1 : x0 - 1 + bw]
        yy = (np.arange(bh, dtype=np.float32)[:, None] - bh / 2) / (bh / 2)
        xx = (np.arange(bw, dtype=np.float32)[None, :] - bw / 2) / (bw / 2)
        mask = np.clip(1.0 - (xx * xx + yy * yy), 0.0, 1.0)[..., None]
        region[...] = region * (1.0 - 0.45 * mask * np.array([0.1, 0.8, 0.7], np.float32))
        boxes.append(VocBox(label, x0, y0, x0 + bw - 1, y0 + bh - 1))
    name = f"P{patient:04d}_{k}.jpg"
    Image.fromarray(img).save(Path(folder) / name, quality=90)
    write_voc(
        Path(folder) / f"P{patient:04d}_{k}.xml",
        VocAnnotation(
            folder=Path(folder).name,
            filename=name,
            path=str(Path(folder) / name),
            width=w,
            height=h,
            depth=3,
            boxes=tuple(boxes),
        ),
    )
    return len(boxes)


def ensure_dataset(cache: Path, args: argparse.Namespace, classes: list[str]) -> Path:
    """`cache/data/images/*.jpg|xml` + `metadata.csv`, two photos per patient, one diagnosis each."""
    key = {
        "images": args.images,
        "width": args.width,
        "height": args.height,
        "seed": args.seed,
        "boxes_per_image": list(args.boxes_per_image),
        "classes": classes,
        "generator": 1,
    }
    marker, data = cache / "dataset.json", cache / "data"
    if marker.is_file() and json.loads(marker.read_text()) == key:
        return data
    marker.unlink(missing_ok=True)  # only what this script writes there: --cache may be any folder
    for old in (data, *cache.glob("prep-*")):
        shutil.rmtree(old, ignore_errors=True)
    images = data / "images"
    images.mkdir(parents=True)
    lo, hi = args.boxes_per_image
    jobs = [
        (i, i // 2 + 1, i % 2, classes[(i // 2) % len(classes)], str(images), lo, hi, args.seed)
        for i in range(args.images)
    ]
    _build_canvas(args.width, args.height, args.seed)
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=get_context("fork")) as pool:
        for _ in track(
            pool.map(_make_photo, jobs, chunksize=4),
            total=len(jobs),
            description=f"generating {args.images} photos",
            console=console,
        ):
            pass
    _CANVAS.clear()
    lines = ["filename,patient_id,body_site,label_source"]
    lines += [f"P{p:04d}_{k}.jpg,P{p:04d},arm,biopsy" for _, p, k, *_ in jobs]
    (data / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    marker.write_text(json.dumps(key))  # written last: a half-written dataset is never reused
    return data


def bench_params(args: argparse.Namespace) -> dict[str, Any]:
    """The repo's params.yaml with the fastest safe prep settings and the stage's extras turned off."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    doc["ingest_data"]["decode"] = "header"  # the stage decodes every photo itself anyway
    if "log_to_mlflow" in doc["validate_annotations"]:
        doc["validate_annotations"]["log_to_mlflow"] = False
    crop = doc["crop_patches"]
    crop.update(patch_size=args.patch_size, workers=0)
    known: set[str] = set()  # the stage refuses unknown keys, and its defaults may turn extras on
    with contextlib.suppress(ImportError):
        from components.crop_patches.core import CropConfig  # where both the old and new stage expose it

        known = {f.name for f in dataclasses.fields(CropConfig)}
    for part, key, value in (
        ("balance", "target_per_class", None),
        ("detection", "enabled", False),
        ("kfold", "enabled", False),
    ):
        if isinstance(crop.get(part), dict) or part in known:
            crop[part] = {**(crop.get(part) or {}), key: value}
    return doc


def run_cli(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("w") as fh:  # untimed preparation: stop at the first failure
        if subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{log.read_text()[-3000:]}")


def ensure_prep(cache: Path, data: Path, doc: dict[str, Any]) -> Path:
    """Run the real ingest + validate CLIs once per (dataset, their params); returns the VAL folder."""
    relevant = {k: doc.get(k) for k in ("task", "ingest_data", "validate_annotations")}
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]
    prep = cache / f"prep-{digest}"
    if (prep / "done").is_file():
        return prep / "validate"
    shutil.rmtree(prep, ignore_errors=True)
    prep.mkdir(parents=True)
    params = prep / "params.yaml"
    params.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    py = [sys.executable, "-m"]
    with console.status("ingest_data + validate_annotations (untimed, cached)"):
        run_cli(
            py
            + ["components.ingest_data", "--source", str(data), "--out", str(prep / "ingest"), "--params", str(params)],
            prep,
            prep / "ingest.log",
        )
        run_cli(
            py
            + [
                "components.validate_annotations",
                "--manifest",
                str(prep / "ingest"),
                "--out",
                str(prep / "validate"),
                "--params",
                str(params),
            ],
            prep,
            prep / "validate.log",
        )
    (prep / "done").write_text("ok")
    return prep / "validate"


def window(box: tuple[float, ...], width: int, height: int, margin: float, square: bool) -> tuple[int, ...]:
    """The box (1-based, inclusive) plus `margin` x its side each side, around its centre, shifted inside."""
    x0, y0, x1, y1 = box[0] - 1, box[1] - 1, box[2], box[3]
    w, h = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
    if square:
        w = h = max(w, h)
    w, h = min(w, width), min(h, height)
    left = min(max((x0 + x1 - w) / 2, 0.0), width - w)
    top = min(max((y0 + y1 - h) / 2, 0.0), height - h)
    return round(left), round(top), round(left) + round(w), round(top) + round(h)


def naive_worker(accepted: Path, source: Path, out: Path, params: Path) -> None:
    """The naive loop (hidden `--naive-worker` mode, so its memory is measured on its own)."""
    import pandas as pd

    crop = yaml.safe_load(params.read_text(encoding="utf-8"))["crop_patches"]
    size, quality, margin = int(crop["patch_size"]), int(crop["jpeg_quality"]), float(crop["context_margin"])
    square = crop.get("shape", "square") == "square" and bool(crop.get("square", True))
    table = pd.read_parquet(accepted / "accepted.parquet")
    out.mkdir(parents=True)
    for n, b in enumerate(table[table.row_type == "box"].itertuples(index=False)):
        with Image.open(source / b.rel_path) as img:
            img.load()
            rgb = img.convert("RGB")
        box = window((b.xmin, b.ymin, b.xmax, b.ymax), rgb.width, rgb.height, margin, square)
        rgb.crop(box).resize((size, size), Image.Resampling.BILINEAR).save(out / f"{n:06d}.jpg", quality=quality)


def tree_memory(root: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) in bytes of a process plus its descendants (pool workers); 0 once it is gone.

    Summed RSS counts pages the forked workers share with their parent once per process; PSS
    splits each shared page between its sharers, so the PSS sum is the memory really used.
    """
    rss = pss = 0
    with contextlib.suppress(psutil.Error):
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                info = p.memory_full_info()
                rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
    return rss, pss


def measured(cmd: list[str], cwd: Path, log: Path, label: str) -> dict[str, float]:
    """Run cmd; wall seconds, exit code and peak RSS and PSS (MiB, sampled every 50 ms) of its process tree."""
    peak, peak_pss, done = 0, 0, threading.Event()

    def sample(root: psutil.Process) -> None:
        nonlocal peak, peak_pss
        while True:
            rss, pss = tree_memory(root)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            if done.wait(0.05):
                return

    with log.open("w") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
        sampler = threading.Thread(target=sample, args=(psutil.Process(proc.pid),), daemon=True)
        sampler.start()
        with console.status(f"running {label}"):
            rc = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    return {"seconds": wall, "rc": rc, "peak_rss_mib": peak / 2**20, "peak_pss_mib": peak_pss / 2**20}


def count_patches(folder: Path) -> int:  # the stage's contact sheet lies outside its patches/
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file())


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--naive-worker":
        naive_worker(*(Path(a) for a in sys.argv[2:6]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    for flag, default in (
        ("--images", 2000),
        ("--width", 3000),
        ("--height", 2000),
        ("--seed", 0),
        ("--patch-size", 64),
    ):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--boxes-per-image", type=int, nargs=2, default=(2, 3), metavar=("MIN", "MAX"))
    parser.add_argument(
        "--cache", type=Path, help="dataset folder (default: $TMPDIR/lesionops-bench-crop/<n>x<w>x<h>-seed<seed>)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the patch output folders")
    args = parser.parse_args()
    lo, hi = args.boxes_per_image
    if not (1 <= lo <= hi) or min(args.width, args.height) < 130:
        parser.error("need 1 <= MIN <= MAX boxes per image and photos of at least 130 px a side")
    cache = args.cache or (
        Path(tempfile.gettempdir())
        / "lesionops-bench-crop"
        / f"{args.images}x{args.width}x{args.height}-seed{args.seed}"
    )
    doc = bench_params(args)
    data = ensure_dataset(cache, args, list(doc["task"]["classes"]))
    accepted = ensure_prep(cache, data, doc)
    import pandas as pd

    table = pd.read_parquet(accepted / "accepted.parquet")
    n_boxes = int((table.row_type == "box").sum())
    photos = list((data / "images").glob("*.jpg"))
    generated = sum(lo + i % (hi - lo + 1) for i in range(args.images))
    mb = sum(p.stat().st_size for p in photos) / 1e6

    work = Path(tempfile.mkdtemp(prefix="lesionops-bench-crop-run-"))
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    runs = {
        "naive": (
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--naive-worker",
                str(accepted),
                str(data),
                str(work / "naive"),
                str(params),
            ],
            work / "naive",
        ),
        "crop_patches": (
            [
                sys.executable,
                "-m",
                "components.crop_patches",
                "--accepted",
                str(accepted),
                "--source",
                str(data),
                "--out",
                str(work / "stage"),
                "--params",
                str(params),
            ],
            work / "stage" / "patches",
        ),
    }
    results: dict[str, dict[str, float]] = {}
    problems = []
    for name, (cmd, out) in runs.items():
        r = measured(cmd, work, work / f"{name}.log", name)
        r["patches"] = count_patches(out) if out.is_dir() else 0
        r["patches_per_s"] = r["patches"] / r["seconds"]
        results[name] = r
        if r["rc"]:
            problems.append(f"{name} exited {r['rc']}:\n{(work / f'{name}.log').read_text()[-3000:]}")
        elif r["patches"] != n_boxes:
            problems.append(f"{name} wrote {r['patches']} patches for {n_boxes} accepted boxes")
    naive, stage = results["naive"], results["crop_patches"]
    ratio = stage["patches_per_s"] / naive["patches_per_s"] if naive["patches_per_s"] else float("nan")

    console.print(
        f"dataset: {len(photos)} photos {args.width}x{args.height} q90 ({mb:.0f} MB, "
        f"{mb / max(len(photos), 1):.2f} MB each), {generated} boxes generated, {n_boxes} accepted; "
        f"patch {args.patch_size} px; {os.cpu_count()} CPU(s); cache {cache}"
    )
    grid = Table("approach", "wall s", "patches", "patches/s", "peak RSS MiB (summed)", "peak PSS MiB")
    for name, r in results.items():
        grid.add_row(
            name,
            f"{r['seconds']:.1f}",
            str(r["patches"]),
            f"{r['patches_per_s']:.1f}",
            f"{r['peak_rss_mib']:.0f}",
            f"{r['peak_pss_mib']:.0f}",
        )
    console.print(grid)
    console.print(f"ratio crop_patches / naive: {ratio:.2f}x (target ≥ 3×: {'met' if ratio >= 3 else 'not met'})")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "images": len(photos),
                    "width": args.width,
                    "height": args.height,
                    "mb_on_disk": round(mb, 1),
                    "boxes_generated": generated,
                    "boxes_accepted": n_boxes,
                    "patch_size": args.patch_size,
                    "cpus": os.cpu_count(),
                    "results": results,
                    "ratio": ratio if ratio == ratio else None,
                    "target_met": ratio >= 3,
                    "problems": problems,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    if args.keep:
        console.print(f"outputs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        console.print("[red]FAILED[/red]:\n" + "\n".join(problems))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
