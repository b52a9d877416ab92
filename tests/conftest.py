"""Shared fixtures: a tiny synthetic labelImg dataset and a params document sized for CPU tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from components.common.settings import deep_merge

REPO = Path(__file__).resolve().parents[1]
TINY_CLASSES = ("lichen_planus", "psoriasis")


def tiny_params(tmp: Path, **overrides: Any) -> dict[str, Any]:
    """The repo's params.yaml shrunk for a fast, deterministic CPU run with its own MLflow store."""
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    small = {
        "task": {"classes": list(TINY_CLASSES)},
        "crop_patches": {"patch_size": 32, "workers": 1, "balance": {"target_per_class": 60}},
        "train_model": {
            "arch": "small_cnn",
            "image_size": 32,
            "epochs": 3,
            "batch_size": 32,
            "threads": 1,
            "patience": 3,
            "min_steps": 0,  # 3 epochs, not lengthened to min_steps
        },
        # 3 tiny epochs need not beat the HOG+SVM baseline; tests that check that rule set it back
        "evaluate_model": {
            "gate": {
                "min_accuracy": 0.0,
                "min_macro_f1": 0.0,
                "min_class_recall": 0.0,
                "min_test_samples": 5,
                "min_gain_vs_baseline": -1.0,
            },
            "bootstrap": {"n_resamples": 200},
        },
        "promote_model": {"audit_log": str(tmp / "mlruns" / "audit.jsonl")},
        "mlflow": {
            "tracking_uri": f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}",
            "artifact_root": str(tmp / "mlruns" / "artifacts"),
        },
    }
    return deep_merge(deep_merge(doc, small), overrides)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 small photos of 2 classes, 1-2 photos per patient so every split gets patients."""
    from lesionops.synth.skin import SynthConfig, generate_skin_dataset

    out = tmp_path_factory.mktemp("tiny") / "data"
    generate_skin_dataset(
        SynthConfig(
            out_dir=out,
            n_images=80,
            seed=3,
            image_width=160,
            image_height=120,
            classes=TINY_CLASSES,
            class_priors=(0.5, 0.5),
            images_per_patient_min=1,
            images_per_patient_max=2,
        ),
        progress=False,
    )
    return out


@pytest.fixture()
def s3_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A boto3 S3 client on a fresh moto server on loopback (a real S3 API over HTTP).

    The endpoint and dummy credentials reach the code under test only through the standard AWS
    variables, as they would on a cluster with MinIO; anything that could point elsewhere
    (a profile, MLflow's own endpoint variable, a torchrun rank) is cleared.
    """
    import urllib.request

    import boto3
    from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client
    from moto.server import ThreadedMotoServer

    # MLflow caches its boto3 clients keyed on MLFLOW_S3_ENDPOINT_URL (unset here): a client made for
    # an earlier test's server (another port, now stopped) would be reused and refused.
    _cached_get_s3_client.cache_clear()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its state per process, not per server: start from an empty account every time
    # a fresh opener without proxies: urlopen's global one keeps the proxy variables of its first use
    # (tests/unit/test_models.py points them at a dead port to stand for an air-gapped machine)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    direct.open(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"))
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "MLFLOW_S3_ENDPOINT_URL", "RANK"):
        monkeypatch.delenv(key, raising=False)
    yield boto3.client("s3")
    server.stop()
    _cached_get_s3_client.cache_clear()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real PostgreSQL 16 server (pgserver ships the binaries; unix socket, no root), one per
    test process; stopped at the end. Tests take a fresh database of it through `postgres_url`."""
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pg") / "pg", cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture()
def postgres_url(postgres_server: Any) -> str:
    """The URL of an empty database of its own on the shared PostgreSQL server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.psql(f"CREATE DATABASE {name};")
    return str(postgres_server.get_uri(database=name))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # two xdist workers on two cores: avoid oversubscription


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def real_data_root() -> Path | None:
    """`shared/real-data`: real, unmodified labelImg datasets kept outside the repository.

    LESIONOPS_REAL_DATA names it; otherwise the first `shared/real-data` beside the checkout or
    one of its parents (a clean clone sits next to `shared/` as the working copy does)."""
    import os

    if env := os.environ.get("LESIONOPS_REAL_DATA"):
        return Path(env) if Path(env).is_dir() else None
    for folder in REPO.parents:
        if (candidate := folder / "shared" / "real-data").is_dir():
            return candidate
    return None


def real_dataset(name: str) -> Path:
    """One real dataset folder, or skip the test saying where it was looked for."""
    root = real_data_root()
    if root is None or not (root / name).is_dir():
        pytest.skip(
            f"real dataset {name!r} not found: set LESIONOPS_REAL_DATA or put shared/real-data beside "
            f"the checkout ({REPO.parent})"
        )
    return root / name
