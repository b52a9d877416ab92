"""A tiny but real serving set-up: an MLflow SQLite registry holding a classifier champion and a
detector champion, logged by the very code train_model / train_detector use, plus the configs
`create_app` takes. Reused by the API tests, the durability test, the benchmark and the browser tests.

Signature contract (other test suites rely on it): `build_serving(root, *, classifier=True,
detector=True, users=True, **serve_overrides) -> ServeSetup`, and
`serve_in_thread(app) -> context manager yielding the base URL ("http://127.0.0.1:PORT")`;
`start_server(params, port, log)` and `wait_healthy(url, proc, log)` run the real `lesionops serve`
command in a process of its own (the crash tests kill it).
With `users`, the store holds one account per role, created by the real `add_user` with the fixed
tokens below (CLINICIAN, REVIEWER, ADMIN; TOKEN is the reviewer, who may classify, report and review).
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from components.common.classifier.config import TrainConfig
from components.common.classifier.models import build_model
from components.common.preprocessing import Normalization
from components.common.store import Store
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, setup
from components.crop_patches.config import CropConfig
from components.train_detector.config import DetectorConfig
from components.train_detector.core import _log_model as log_detector_model
from components.train_detector.core import build_detector
from components.train_model.core import _log_model as log_classifier_model
from lesionops.serve.config import ServeConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("lichen_planus", "psoriasis")
CLINICIAN = "c1c1c1c1c1c1c1c1.clinician-secret-0123456789"
REVIEWER = "e2e2e2e2e2e2e2e2.reviewer-secret-01234567890"
ADMIN = "a3a3a3a3a3a3a3a3.admin-secret-0123456789abcdef"
TOKEN = REVIEWER
USERS = {"dr-clinician": ("clinician", CLINICIAN), "dr-test": ("reviewer", REVIEWER), "ops-admin": ("admin", ADMIN)}
_EMPTY_STORE: dict[str, Path] = {}


@dataclass(frozen=True)
class ServeSetup:
    """Everything `create_app` needs, plus where it all lives."""

    root: Path
    cfg: ServeConfig
    tracking: TrackingConfig
    task: TaskConfig
    crop: CropConfig

    def app(self, scope: Any = None) -> FastAPI:
        """The app; `scope` (a ScopeConfig) turns the per-request scope check on."""
        from lesionops.serve.app import create_app

        return create_app(self.cfg, self.tracking, self.task, crop=self.crop, promote=self.promote, scope=scope)

    @property
    def promote(self) -> Any:
        from components.promote_model.config import PromoteConfig

        return PromoteConfig(audit_log=str(self.root / "mlruns" / "audit.jsonl"))

    def params(self) -> dict[str, Any]:
        """The same set-up as a params document (for `lesionops serve --params`)."""
        return {
            "task": {"name": self.task.name, "classes": list(self.task.classes), "models": list(self.task.models)},
            "crop_patches": {"patch_size": self.crop.patch_size},
            "serve": dataclasses.asdict(self.cfg),
            "mlflow": dataclasses.asdict(self.tracking),
            "promote_model": dataclasses.asdict(self.promote),
        }


def _empty_store() -> Path:
    """An MLflow SQLite file with its schema migrated once per process (migration costs seconds)."""
    if "db" not in _EMPTY_STORE:
        db = Path(tempfile.mkdtemp(prefix="lesionops-mlflow-")) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
        _EMPTY_STORE["db"] = db
    return _EMPTY_STORE["db"]


def new_tracking(root: Path) -> TrackingConfig:
    """A fresh registry under `root/mlruns` (a copy of the migrated empty store)."""
    (root / "mlruns").mkdir(parents=True, exist_ok=True)
    shutil.copy(_empty_store(), root / "mlruns" / "mlflow.db")
    return TrackingConfig(
        tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        artifact_root=str(root / "mlruns" / "artifacts"),
        experiment="serve-tests",
        registered_model="tiny_classifier",
        registered_detector="tiny_detector",
    )


def _promote(tracking: TrackingConfig, name: str, model_uri: str, alias: str) -> str:
    version = str(mlflow.register_model(model_uri, name).version)
    MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def log_classifier(
    tracking: TrackingConfig,
    task: TaskConfig,
    work: Path,
    *,
    seed: int = 0,
    image_size: int = 32,
    temperature: float | None = 1.5,
    alias: str = "champion",
) -> str:
    """A small_cnn logged exactly as train_model logs it, its temperature as evaluate_model logs it,
    registered and given `alias`. Returns the registry version."""
    torch.manual_seed(seed)
    cfg = TrainConfig(arch="small_cnn", image_size=image_size, dropout=0.0)
    model = build_model(cfg.arch, len(task.classes), cfg.dropout).eval()
    sample = torch.randint(0, 256, (2, 3, image_size, image_size), dtype=torch.uint8)
    out = work / f"classifier-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    setup(tracking)
    norm = Normalization((0.6, 0.5, 0.45), (0.2, 0.25, 0.3))  # not ImageNet's: serving must use the logged one
    with mlflow.start_run(run_name=f"train-small_cnn-{seed}"):
        uri = log_classifier_model(model, sample, task, cfg, out, norm)
        if temperature is not None:
            mlflow.log_metric("temperature", temperature)
    return _promote(tracking, tracking.registered_model, uri, alias)


def log_detector(
    tracking: TrackingConfig, task: TaskConfig, work: Path, *, seed: int = 0, alias: str = "champion"
) -> str:
    """A randomly initialised Faster R-CNN (MobileNetV3 FPN) logged as train_detector logs it."""
    torch.manual_seed(seed)
    cfg = DetectorConfig(min_size=96, max_size=128, score_threshold=0.0)
    model = build_detector(cfg, len(task.classes)).eval()
    out = work / f"detector-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    setup(tracking)
    with mlflow.start_run(run_name=f"train-detector-{seed}"):
        uri = log_detector_model(model, cfg, task, out)
    return _promote(tracking, tracking.registered_detector, uri, alias)


def add_test_users(store_url: str) -> None:
    """The three accounts of USERS (one per role) in the store at `store_url`."""
    from components.common.store import Store
    from lesionops.serve.users import add_user

    store = Store(store_url)
    try:
        for name, (role, token) in USERS.items():
            add_user(store, name, role, token=token)
    finally:
        store.close()


def build_serving(
    root: Path, *, classifier: bool = True, detector: bool = True, users: bool = True, **serve_overrides: Any
) -> ServeSetup:
    """A registry with the requested champions and a serving config whose files all live in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    models = ("classifier", "detector")
    task = TaskConfig(name="tiny_skin", classes=CLASSES, models=models)
    tracking = new_tracking(root)
    if classifier:
        log_classifier(tracking, task, root / "work")
    if detector:
        log_detector(tracking, task, root / "work")
    values: dict[str, Any] = {
        "store_url": f"sqlite:///{root / 'serving' / 'lesionops.db'}",
        "image_dir": str(root / "serving" / "images"),
        "feedback_dir": str(root / "feedback"),
        "reload_every_s": 0.0,
        "max_upload_bytes": 2_000_000,
        "max_image_pixels": 4_000_000,
        "detect_score_threshold": 0.0,
        "port": 8000,
        "upload_rate": "1000/minute",
    }
    values.update(serve_overrides)
    cfg = ServeConfig(**values)
    if users:
        add_test_users(cfg.store_url)
    return ServeSetup(root, cfg, tracking, task, CropConfig(patch_size=32))


def image_bytes(width: int = 160, height: int = 120, fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A small synthetic photo (smooth colour field plus a darker blob) encoded as `fmt`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([180 + 30 * np.sin(xx / 17.0), 140 + 20 * np.cos(yy / 13.0), 120 + 0 * xx], axis=-1)
    cx, cy = rng.integers(width // 4, 3 * width // 4), rng.integers(height // 4, 3 * height // 4)
    blob = ((xx - cx) ** 2 + (yy - cy) ** 2) < (min(width, height) // 5) ** 2
    base[blob] -= 70
    arr = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def free_port() -> int:
    """A loopback port nobody listens on right now (for servers started in another process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: FastAPI, timeout_s: float = 60.0) -> Iterator[str]:
    """Run `app` with a real uvicorn server on a free loopback port in a thread; yields its URL.

    The socket is bound here (port 0) and handed to uvicorn, so there is no window in which another
    process could take the port. The lifespan runs (champions load) before the URL is yielded.
    """
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start (see the log above)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def start_server(params: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`lesionops serve --params PARAMS --port PORT` in its own process, output appended to `log`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lesionops", "serve", "--params", str(params), "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> None:
    """Until /health names a loaded classifier; fails the test (with the log's tail) otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).json()["classifier"] is not None:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"server not healthy after {timeout_s}s:\n{log.read_text()[-3000:]}")


def all_at_once(n: int, call: Callable[[int], Any]) -> list[Any]:
    """`call(0)` … `call(n - 1)` from n threads released together by a barrier; results in order."""
    barrier = threading.Barrier(n)

    def go(i: int) -> Any:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def filled(store: Store, prediction_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """The prediction row once the server's feature worker has measured its drift features."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = store.get_prediction(prediction_id)
        assert row is not None, f"no prediction {prediction_id}"
        if row["features_pending"] is None:
            return row
        if time.monotonic() > deadline:
            pytest.fail(f"the drift features of prediction {prediction_id} still pending after {timeout_s}s")
        time.sleep(0.05)
