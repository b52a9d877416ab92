"""Every stage's data on S3: raw images, each stage's output and MLflow's artifacts all live in a
real S3 server (moto over HTTP on loopback), with the stage CLIs run exactly as dvc.yaml runs them
but with s3:// URIs for every path. The endpoint reaches the stages (and MLflow) only through the
standard AWS_ENDPOINT_URL_S3 variable; nothing in params or code names it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from components.common import storage
from tests.conftest import tiny_params

pytestmark = pytest.mark.slow

DATA, ARTIFACTS = "lesionops-data", "lesionops-artifacts"


@pytest.fixture()
def s3(s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The data and artifacts buckets on the shared moto server (tests/conftest.py)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for bucket in (DATA, ARTIFACTS):
        s3_client.create_bucket(Bucket=bucket)
    return s3_client


def _stages(run: str, cache: Path) -> list[list[str]]:
    """dvc.yaml's commands with every path an S3 URI (plus where to mirror them locally)."""
    out = {
        s: f"s3://{ARTIFACTS}/runs/{run}/{s}"
        for s in (
            "ingest_data",
            "validate_annotations",
            "crop_patches",
            "train_baseline",
            "train_model",
            "evaluate_model",
            "promote_model",
        )
    }
    raw = f"s3://{DATA}/raw"
    return [
        [stage, *args, "--out", out[stage], "--cache-dir", str(cache)]
        for stage, *args in [
            ["ingest_data", "--source", raw],
            ["validate_annotations", "--manifest", out["ingest_data"]],
            ["crop_patches", "--accepted", out["validate_annotations"], "--source", raw],
            ["train_baseline", "--patches", out["crop_patches"]],
            ["train_model", "--patches", out["crop_patches"]],
            [
                "evaluate_model",
                "--patches",
                out["crop_patches"],
                "--model",
                out["train_model"],
                "--baseline",
                out["train_baseline"],
                "--validation",
                out["validate_annotations"],
            ],
            [
                "promote_model",
                "--model",
                out["train_model"],
                "--evaluation",
                out["evaluate_model"],
                "--patches",
                out["crop_patches"],
            ],
        ]
    ]


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])]


def test_every_stage_reads_and_writes_s3(s3: Any, tiny_dataset: Path, tmp_path: Path) -> None:
    import mlflow

    for path in sorted(tiny_dataset.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), DATA, f"raw/{path.relative_to(tiny_dataset).as_posix()}")
    cache = tmp_path / "cache"  # one mirror for the stages and ingest: crop re-reads raw/ from it
    params = tiny_params(
        tmp_path,
        train_model={"epochs": 2},
        train_baseline={"c_grid": []},
        evaluate_model={"bootstrap": {"n_resamples": 100}},
        ingest_data={"cache_dir": str(cache / "sources")},
        mlflow={"artifact_root": f"s3://{ARTIFACTS}/mlflow"},
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params))

    for stage, *args in _stages("r1", cache):
        result = subprocess.run(
            [sys.executable, "-m", f"components.{stage}", *args],
            cwd=work,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{stage} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"

    runs = {
        s: _keys(s3, ARTIFACTS, f"runs/r1/{s}/")
        for s in (
            "ingest_data",
            "validate_annotations",
            "crop_patches",
            "train_baseline",
            "train_model",
            "evaluate_model",
            "promote_model",
        )
    }
    assert {"manifest.parquet", "ingest_report.json"} <= set(runs["ingest_data"])
    assert {"accepted.parquet", "validation_report.json"} <= set(runs["validate_annotations"])
    assert "patches.parquet" in runs["crop_patches"] and sum(k.endswith(".jpg") for k in runs["crop_patches"]) > 50
    assert "baseline_metrics.json" in runs["train_baseline"]
    assert {"checkpoint.pt", "last.pt", "train_summary.json"} <= set(runs["train_model"])
    assert {"metrics.json", "decision.json", "roc.png"} <= set(runs["evaluate_model"])
    assert any(k.startswith("reference/") for k in runs["evaluate_model"])
    assert {"promotion.json", "model_card.md"} <= set(runs["promote_model"])
    manifest = pd.read_parquet(io.BytesIO(storage.read_bytes(f"s3://{ARTIFACTS}/runs/r1/ingest_data/manifest.parquet")))
    assert manifest.source_uri.str.startswith(f"s3://{DATA}/raw/").all()  # lineage names the S3 objects

    # MLflow's artifacts went to the bucket (MLflow got the endpoint from AWS_ENDPOINT_URL_S3 alone).
    mlflow_keys = _keys(s3, ARTIFACTS, "mlflow/")
    assert any(k.endswith("MLmodel") for k in mlflow_keys) and any("/reference/" in k for k in mlflow_keys)
    assert not (tmp_path / "mlruns" / "artifacts").exists()
    mlflow.set_tracking_uri(params["mlflow"]["tracking_uri"])
    name = params["mlflow"]["registered_model"]
    version = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    assert mlflow.get_run(version.run_id).info.artifact_uri.startswith(f"s3://{ARTIFACTS}/mlflow/")
    model = mlflow.pytorch.load_model(f"models:/{name}@champion", map_location="cpu")
    assert sum(p.numel() for p in model.parameters()) > 0

    # Nothing landed in the working directory: the only local copies are in the cache.
    assert sorted(p.name for p in work.iterdir()) == ["params.yaml"]
