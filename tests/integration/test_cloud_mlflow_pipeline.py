"""The training pipeline against the cloud set-up: raw data in S3, MLflow's backend store on
PostgreSQL and its artifacts in S3 — the same kfp pipeline and stage code as the embedded default.

Both servers are real and started here on loopback: moto (S3 API over HTTP) and PostgreSQL
(pgserver ships the server binaries in a wheel). The endpoint reaches every stage only through
the standard AWS_ENDPOINT_URL_S3 variable; nothing in params names it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_params

DATA, ARTIFACTS = "lesionops-data", "lesionops-artifacts"


@pytest.fixture()
def s3(s3_client: object) -> object:
    """The data and artifacts buckets on the shared moto server (tests/conftest.py)."""
    for bucket in (DATA, ARTIFACTS):
        s3_client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return s3_client


def _upload(client: object, folder: Path, bucket: str, prefix: str) -> int:
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")  # type: ignore[attr-defined]
    return len(files)


def _keys(client: object, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.mark.slow
def test_pipeline_on_s3_data_with_postgres_registry_and_s3_artifacts(
    s3: object, postgres_url: str, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import sqlalchemy as sa
    from mlflow.tracking import MlflowClient

    from pipelines.local import run_training

    monkeypatch.chdir(tmp_path)
    assert _upload(s3, tiny_dataset, DATA, "raw") > 80
    params = tiny_params(tmp_path, mlflow={"tracking_uri": postgres_url, "artifact_root": f"s3://{ARTIFACTS}/mlflow"})
    run_training(
        f"s3://{DATA}/raw", params, tmp_path / "kfp-root", data_version="s3-test", log_path=tmp_path / "kfp.log"
    )

    client = MlflowClient(tracking_uri=postgres_url)
    name = params["mlflow"]["registered_model"]
    champion = client.get_model_version_by_alias(name, "champion")
    run = client.get_run(champion.run_id)
    assert run.info.artifact_uri.startswith(f"s3://{ARTIFACTS}/mlflow/")
    stored = _keys(s3, ARTIFACTS, "mlflow/")
    assert any(k.endswith("MLmodel") for k in stored), stored[:20]
    assert any("reference/" in k for k in stored)  # the drift reference the evaluator logs
    with sa.create_engine(postgres_url).connect() as conn:  # the rows are in PostgreSQL, not a file
        assert conn.execute(sa.text("select count(*) from runs")).scalar() >= 3
        assert conn.execute(sa.text("select count(*) from model_versions")).scalar() == 1
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()

    mlflow.set_tracking_uri(postgres_url)
    model = mlflow.pytorch.load_model(f"models:/{name}@champion", map_location="cpu")
    assert sum(p.numel() for p in model.parameters()) > 0
