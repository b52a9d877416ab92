"""Claim: `/classify` serves at a stated p50/p99 latency and requests/s on this CPU, and we know how
much of that is the model: the same run times the bare model call (preprocess + forward).

Set-up (all in a temp folder): the classifier architecture and input size of params.yaml
(`train_model.arch`, `image_size`; random weights: speed does not depend on them) logged by
train_model's own `_log_model`, registered and made `champion` in a fresh SQLite MLflow registry;
a few synthetic 640×480 labelImg photos from `lesionops synth`'s generator; the real app
(`create_app`) under uvicorn on loopback in this process, with its SQLite store (WAL, FULL sync);
its classifier forwards run in the server's model process (`serve.model_process`, params.yaml).

Measured:
1. API: `--clients` threads with their own httpx connection post `--requests` /classify calls
   (photo + its lesion box) after `--warmup` untimed ones: p50/p99 latency and requests/s.
   Each call decodes the image once (at the reduced scale its patch needs), hashes and stores
   (fsync) it, crops, classifies and commits the prediction row (SQLite, synchronous=FULL); the
   drift features are measured after the answer by the server's feature worker, and the run
   prints how many rows were still pending when the load ended and how long they took to fill.
   Then the same with one client (`--single` calls: the latency a lone phone sees) and with
   `--batch-clients` clients (a batch re-scoring), with the mean micro-batch size the server formed
   (`serve.max_batch`, `--max-batch` overrides it; 1 = every request its own forward). Then a
   second server with `serve.backend: onnx` (ONNX Runtime, the graph exported at load) under the
   `--clients` load, and one with `serve.model_process: false` (the forward on the server's own
   model thread; `--no-in-process` skips it).
2. bare model: the one reduced decode (`decode_open`) + `patch_for` + `to_batch` + the forward
   pass with embeddings, the exact calls the route makes, sequentially in this thread (half before, half after the API load): p50, calls/s.
   The ratio API req/s ÷ bare calls/s says how much throughput the HTTP, storage and drift-feature
   work costs, net of what micro-batching wins back (the server and its clients share this process
   and its cores).

    .venv/bin/python benchmarks/serve.py [--requests 400] [--clients 4] [--arch ARCH] [--image-size N]
        [--warmup 20] [--bare 200] [--threads N] [--single 100] [--batch-clients 16] [--max-batch N]
        [--no-onnx] [--no-in-process] [--params params.yaml]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import httpx
import mlflow
import numpy as np
import torch
import uvicorn
from mlflow.tracking import MlflowClient
from PIL import Image

from components.common.classifier.config import TrainConfig
from components.common.classifier.models import build_model
from components.common.params import load_params, section
from components.common.preprocessing import Normalization
from components.common.store import Store
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, setup
from components.common.voc import read_voc
from components.crop_patches.config import CropConfig
from components.crop_patches.pixels import decode_open
from components.train_model.core import _log_model
from lesionops.serve.app import create_app
from lesionops.serve.config import ServeConfig
from lesionops.serve.inference import patch_for, patch_scale, run_classifier, to_batch
from lesionops.serve.models import Champions
from lesionops.serve.users import add_user
from lesionops.synth.skin import SynthConfig, generate_skin_dataset


def registry(root: Path, task: TaskConfig, cfg: TrainConfig) -> TrackingConfig:
    """A fresh registry whose `champion` is `cfg.arch`, logged exactly as train_model logs it."""
    tracking = TrackingConfig(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=str(root / "artifacts"),
        experiment="bench-serve",
        registered_model="bench_classifier",
    )
    setup(tracking)
    model = build_model(cfg.arch, len(task.classes), cfg.dropout).eval()
    sample = torch.randint(0, 256, (2, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    with mlflow.start_run():
        uri = _log_model(model, sample, task, cfg, root, Normalization((0.6, 0.5, 0.45), (0.2, 0.25, 0.3)))
        mlflow.log_metric("temperature", 1.3)
    version = mlflow.register_model(uri, tracking.registered_model).version
    MlflowClient().set_registered_model_alias(tracking.registered_model, "champion", version)
    return tracking


def photos(root: Path, task: TaskConfig) -> list[tuple[bytes, str]]:
    """Synthetic 640×480 photos with the first lesion box of each, as the API's `box` field."""
    generate_skin_dataset(
        SynthConfig(out_dir=root, n_images=8, seed=5, image_width=640, image_height=480, classes=task.classes),
        progress=False,
    )
    out = []
    for xml in sorted(root.rglob("*.xml")):
        ann = read_voc(xml)
        if ann.boxes:
            b = ann.boxes[0]
            box = f"{b.xmin - 1:g},{b.ymin - 1:g},{b.xmax:g},{b.ymax:g}"
            out.append(((xml.parent / ann.filename).read_bytes(), box))
    return out


def serve(app: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def load(url: str, images: list[tuple[bytes, str]], n: int, clients: int, token: str) -> tuple[list[float], float]:
    """Per-request latencies (s) and the wall time of `n` /classify calls from `clients` threads."""

    def worker(k: int) -> list[float]:
        times = []
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
            for i in range(k, n, clients):
                data, box = images[i % len(images)]
                start = time.perf_counter()
                r = client.post("/classify", files={"file": ("p.jpg", data, "image/jpeg")}, data={"box": box})
                times.append(time.perf_counter() - start)
                if r.status_code != 200:
                    raise RuntimeError(f"/classify answered {r.status_code}: {r.text}")
        return times

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for part in pool.map(worker, range(clients)) for t in part]
    return latencies, time.perf_counter() - start


def bare(
    tracking: TrackingConfig,
    task: TaskConfig,
    crop: CropConfig,
    images: list[tuple[bytes, str]],
    n: int,
    threads: int,
    backend: str = "torch",
) -> list[float]:
    """The route's model work alone: the one reduced decode of the upload's bytes, crop, preprocess
    and forward."""
    champions = Champions(tracking, "champion", task.classes, ("classifier",), backend=backend)
    champions.refresh()
    model = champions.classifier
    assert model is not None
    boxes = [(data, [float(v) for v in box.split(",")]) for data, box in images]
    times = []
    for i in range(-3, n):  # 3 untimed warm-up calls
        data, box = boxes[i % len(boxes)]
        start = time.perf_counter()
        with Image.open(BytesIO(data)) as raw:
            img = decode_open(raw, patch_scale(raw.size, box, crop))
        run_classifier(model, to_batch(patch_for(img, (640, 480), box, 1, crop), model), threads)
        if i >= 0:
            times.append(time.perf_counter() - start)
    return times


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--bare", type=int, default=200)
    parser.add_argument("--arch", default=None, help="default: train_model.arch of --params")
    parser.add_argument("--image-size", type=int, default=None, help="default: train_model.image_size")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: serve's, torch_threads or cores - 1)"
    )
    parser.add_argument("--single", type=int, default=100, help="requests of the one-client row (0: skip)")
    parser.add_argument("--batch-clients", type=int, default=16, help="clients of the batch row (0: skip)")
    parser.add_argument("--max-batch", type=int, default=None, help="default: serve.max_batch")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the ONNX Runtime rows")
    parser.add_argument(
        "--no-in-process",
        dest="in_process",
        action="store_false",
        help="skip the row with serve.model_process off (the forward on the server's model thread)",
    )
    args = parser.parse_args()
    doc = load_params(args.params)
    train = section(doc, "train_model", TrainConfig)
    train = TrainConfig(arch=args.arch or train.arch, image_size=args.image_size or train.image_size)
    task = TaskConfig(name="bench", classes=tuple(doc["task"]["classes"]))
    crop = section(doc, "crop_patches", CropConfig)
    serve_cfg = section(doc, "serve", ServeConfig)
    threads = args.threads if args.threads is not None else serve_cfg.model_threads
    max_batch = args.max_batch or serve_cfg.max_batch
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # logged in a thread that then exits: training happens in another process in real life, and
        # its OpenMP team must not stay in this one next to the server's model thread (serve/batching.py)
        with ThreadPoolExecutor(1) as logger:
            tracking = logger.submit(registry, root / "mlruns", task, train).result()
        images = photos(root / "photos", task)
        cfg = ServeConfig(
            store_url=f"sqlite:///{root / 'serve.db'}",
            image_dir=str(root / "images"),
            feedback_dir=str(root / "feedback"),
            reload_every_s=0,
            torch_threads=threads,
            upload_rate=None,
            max_batch=max_batch,
            batch_wait_ms=serve_cfg.batch_wait_ms,
            model_process=serve_cfg.model_process,
        )
        store = Store(cfg.store_url)
        _, token = add_user(store, "bench", "clinician")  # signed in, as every clinic request is
        store.close()
        backends = ("torch", "onnx") if args.onnx else ("torch",)
        # bare calls before and after the API load, so a shared machine's drifting load hits both alike
        bare_times = {b: bare(tracking, task, crop, images, args.bare // 2, threads, b) for b in backends}
        rows = api_rows(args, cfg, tracking, task, crop, images, token)
        if args.onnx:
            onnx_cfg = dataclasses.replace(cfg, backend="onnx")
            rows |= api_rows(args, onnx_cfg, tracking, task, crop, images, token, "onnx")
        if args.in_process and cfg.model_process:  # what the model process wins, in the same run
            inline_cfg = dataclasses.replace(cfg, model_process=False)
            rows |= api_rows(args, inline_cfg, tracking, task, crop, images, token, "in-process")
        for b in backends:
            bare_times[b] += bare(tracking, task, crop, images, args.bare - args.bare // 2, threads, b)
    report(args, train, task, threads, max_batch, rows, bare_times)


def api_rows(
    args: argparse.Namespace,
    cfg: ServeConfig,
    tracking: TrackingConfig,
    task: TaskConfig,
    crop: CropConfig,
    images: list[tuple[bytes, str]],
    token: str,
    variant: str = "",
) -> dict[str, tuple[list[float], float, float]]:
    """The API rows of one server: `--clients`, then (the main server, no `variant`) one client and
    the batch clients."""
    app = create_app(cfg, tracking, task, crop=crop)
    server, thread, url = serve(app)
    app.state.serve.features.ready.wait(120)  # type: ignore[attr-defined]  # its process started (once)
    suffix, only_main = (f", {variant}", True) if variant else ("", False)
    rows = {}
    try:
        load(url, images, args.warmup, args.clients, token)
        rows[f"{args.clients} clients{suffix}"] = measured(
            app, lambda: load(url, images, args.requests, args.clients, token)
        )
        latencies, wall, _ = rows[f"{args.clients} clients{suffix}"]
        pending, drain_s = backlog(app)
        print(
            f"  drift features{suffix}: {pending} rows pending when the load ended, all filled {drain_s:.1f} s later "
            f"({len(latencies) / (wall + drain_s):.1f} req/s counting that time)"
        )
        if args.single and not only_main:
            rows["1 client"] = measured(app, lambda: load(url, images, args.single, 1, token))
        if args.batch_clients and not only_main:
            n = max(args.requests, 4 * args.batch_clients)
            rows[f"{args.batch_clients} clients"] = measured(
                app, lambda: load(url, images, n, args.batch_clients, token)
            )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return rows


def backlog(app: object, timeout_s: float = 300.0) -> tuple[int, float]:
    """Rows still waiting for their drift features when a load ends, and how long the server's
    feature worker then takes to fill them (the next row is measured only after that)."""
    store = app.state.serve.store  # type: ignore[attr-defined]
    start = time.perf_counter()
    pending = len(store.pending_features(10**6))
    left = pending
    while left and time.perf_counter() - start < timeout_s:
        time.sleep(0.1)
        left = len(store.pending_features(10**6))
    return pending, time.perf_counter() - start


def measured(app: object, run: Callable[[], tuple[list[float], float]]) -> tuple[list[float], float, float]:
    """(latencies, wall, mean micro-batch size) of one load, the batch size from the served model's batcher."""
    batcher = app.state.serve.champions.classifier.batcher  # type: ignore[attr-defined]
    before = (batcher.batches, batcher.batched)
    latencies, wall = run()
    batches, batched = batcher.batches - before[0], batcher.batched - before[1]
    return latencies, wall, batched / max(batches, 1)


def report(
    args: argparse.Namespace,
    train: TrainConfig,
    task: TaskConfig,
    threads: int,
    max_batch: int,
    rows: dict[str, tuple[list[float], float, float]],
    bare_times: dict[str, list[float]],
) -> None:
    bare_torch = bare_times["torch"]
    bare_rps = 1 / statistics.mean(bare_torch)
    print(
        f"serve benchmark: {train.arch} @ {train.image_size}px, {len(task.classes)} classes, 640x480 JPEG + box; "
        f"{os.cpu_count()} CPUs, torch threads {threads or torch.get_num_threads()}, max_batch {max_batch}, "
        f"{args.requests} requests"
    )
    for name, (latencies, wall, mean_batch) in rows.items():
        print(
            f"  API  /classify, {name:>22}: p50 {pct(latencies, 50):7.1f} ms  p99 {pct(latencies, 99):7.1f} ms  "
            f"{len(latencies) / wall:7.1f} req/s  (mean batch {mean_batch:.1f})"
        )
    for backend, times in bare_times.items():
        print(
            f"  bare model call, {backend:>21}: p50 {pct(times, 50):7.1f} ms  p99 {pct(times, 99):7.1f} ms  "
            f"{1 / statistics.mean(times):7.1f} calls/s  (crop + preprocess + forward, one thread)"
        )
    latencies, wall, _ = rows[f"{args.clients} clients"]
    api_rps = len(latencies) / wall
    print(
        f"  ratio API req/s / bare calls/s = {api_rps / bare_rps:.2f}; "
        f"API p50 / bare p50 = {pct(latencies, 50) / pct(bare_torch, 50):.1f}x"
    )
    inline = rows.get(f"{args.clients} clients, in-process")
    if inline is not None:
        print(
            f"  ratio with the forward in the server (serve.model_process false) = {len(inline[0]) / inline[1] / bare_rps:.2f}"
        )
    if "1 client" in rows:
        single = pct(rows["1 client"][0], 50)
        print(f"  one client: API p50 - bare p50 = {single - pct(bare_torch, 50):+.1f} ms")
    if "onnx" in bare_times:
        ratio = statistics.mean(bare_torch) / statistics.mean(bare_times["onnx"])
        print(f"  onnx / torch bare calls/s = {ratio:.2f}")


if __name__ == "__main__":
    main()
