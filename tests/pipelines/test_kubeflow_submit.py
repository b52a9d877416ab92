"""Submitting to Kubeflow offline: the data fingerprint (a real `dvc add`, a real S3 server on
loopback), the checks and arguments of a run, and kfp.Client creating the run and the monitoring
schedule against a small stand-in for the KFP v2beta1 API (five routes, recording what it was sent)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from components.common.errors import ConfigError, DataError
from components.common.params import load_params
from components.common.settings import apply_overrides
from pipelines.datasource import fingerprint, mirror_to_s3
from pipelines.submit import cluster_problems, run_request, submit_training
from tests.conftest import REPO

BUCKET = "lesionops-data"
CLUSTER = [
    "mlflow.tracking_uri=http://mlflow.mlflow.svc:5000",
    "mlflow.artifact_root=s3://lesionops-artifacts/mlflow",
    "kubeflow.pipeline_root=s3://lesionops-artifacts/pipeline-root",
    "kubeflow.service_account=lesionops-runner",
]


def _dataset(root: Path) -> Path:
    for rel, data in {
        "images/a.jpg": b"\xff\xd8a",
        "images/b.jpg": b"\xff\xd8bb",
        "Annotations/a.xml": b"<a/>",
        "metadata.csv": b"filename,patient_id\nimages/a.jpg,P1\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture()
def s3(s3_client: Any) -> Any:
    """One bucket on the shared moto server (tests/conftest.py)."""
    s3_client.create_bucket(Bucket=BUCKET)
    return s3_client


class _KfpApi(BaseHTTPRequestHandler):
    """healthz, experiments (list/create), runs and recurring runs (create) of the KFP v2beta1 REST API."""

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urlparse(self.path).path
        self._reply({"multi_user": False} if path.endswith("/healthz") else {})  # no experiment yet

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path = urlparse(self.path).path
        self.server.posts[path] = body  # type: ignore[attr-defined]
        ids = {
            "/apis/v2beta1/experiments": {"experiment_id": "exp-1"},
            "/apis/v2beta1/runs": {"run_id": "run-1"},
            "/apis/v2beta1/recurringruns": {"recurring_run_id": "rr-1"},
        }
        self._reply({**body, **ids[path]})


@pytest.fixture()
def kfp_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json of this machine
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KfpApi)
    server.posts = {}  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", server.posts  # type: ignore[attr-defined]
    server.shutdown()


def _cluster_doc(*sets: str) -> dict[str, Any]:
    return apply_overrides(load_params(REPO / "params.yaml"), [*CLUSTER, *sets])


def test_folder_fingerprint_is_the_md5_dvc_add_records(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data"], cwd=tmp_path, check=True)
    recorded = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]["md5"]
    assert fingerprint(data) == recorded and recorded.endswith(".dir")
    (data / "images" / "b.jpg").write_bytes(b"\xff\xd8bc")  # one changed byte
    assert fingerprint(data) != recorded
    with pytest.raises(DataError, match="data folder not found"):
        fingerprint(tmp_path / "absent")


def test_s3_fingerprint_follows_the_listing(s3: Any, tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    for order, prefix in ((sorted, "a/raw"), (lambda xs: sorted(xs, reverse=True), "b/raw")):
        for path in order(p for p in data.rglob("*") if p.is_file()):
            s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(data).as_posix()}")
    first = fingerprint(f"s3://{BUCKET}/a/raw")
    assert len(first) == 64 and fingerprint(f"s3://{BUCKET}/a/raw/") == first
    assert fingerprint(f"s3://{BUCKET}/b/raw") == first  # same objects, other prefix and upload order
    s3.put_object(Bucket=BUCKET, Key="a/raw/images/b.jpg", Body=b"\xff\xd8bc")  # rewritten
    second = fingerprint(f"s3://{BUCKET}/a/raw")
    s3.put_object(Bucket=BUCKET, Key="a/raw/images/c.jpg", Body=b"\xff\xd8c")  # added
    third = fingerprint(f"s3://{BUCKET}/a/raw")
    s3.delete_object(Bucket=BUCKET, Key="a/raw/images/c.jpg")  # removed again
    assert len({first, second, third}) == 3 and fingerprint(f"s3://{BUCKET}/a/raw") == second
    with pytest.raises(DataError, match="no objects under this S3 prefix"):
        fingerprint(f"s3://{BUCKET}/nothing-here")
    with pytest.raises(DataError, match="cannot list"):
        fingerprint("s3://no-such-bucket/raw")


def test_mirror_uploads_changes_only_and_refuses_foreign_objects(s3: Any, tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    uri = f"s3://{BUCKET}/mirror"
    assert mirror_to_s3(data, uri)["uploaded"] == 4
    assert mirror_to_s3(data, uri) == {"uploaded": 0, "unchanged": 4, "deleted": 0}
    (data / "images" / "d.jpg").write_bytes(b"\xff\xd8d")
    assert mirror_to_s3(data, uri)["uploaded"] == 1
    s3.put_object(Bucket=BUCKET, Key="mirror/images/stranger.jpg", Body=b"x")
    (data / "images" / "e.jpg").write_bytes(b"\xff\xd8e")
    with pytest.raises(DataError, match=r"1 object\(s\) are not in .*stranger.jpg"):
        mirror_to_s3(data, uri)
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="mirror/")["Contents"]}
    assert "mirror/images/e.jpg" not in listed  # refused before anything was uploaded


def test_what_a_cluster_cannot_run_is_named() -> None:
    problems = " | ".join(cluster_problems(load_params(REPO / "params.yaml"), "data", "untracked"))
    for expected in (
        "source 'data'",
        "data_version 'untracked'",
        "kubeflow.pipeline_root is not set",
        "mlflow.tracking_uri 'sqlite:///mlruns/mlflow.db'",
        "mlflow.artifact_root 'mlruns/artifacts'",
    ):
        assert expected in problems
    assert cluster_problems(_cluster_doc(), f"s3://{BUCKET}/raw", "abc123") == []
    with pytest.raises(ConfigError, match="cannot submit to Kubeflow: source"):
        run_request(_cluster_doc(), "/data", "abc123", experiment="lesionops")
    with pytest.raises(ConfigError, match="source '/no/such/data'"):  # refused before any hashing
        submit_training(_cluster_doc(), "/no/such/data", host=None, experiment="lesionops")


def test_run_request_carries_the_fingerprint_and_the_cluster_settings() -> None:
    doc = _cluster_doc("kubeflow.namespace=team-a")
    request = run_request(doc, f"s3://{BUCKET}/raw", "0123456789abcdef", experiment="lesionops")
    assert request.arguments == {
        "source_uri": f"s3://{BUCKET}/raw",
        "data_version": "0123456789abcdef",
        "params_json": json.dumps(doc, sort_keys=True),
    }
    assert (request.run_name, request.pipeline_root, request.namespace, request.service_account) == (
        "es_skin-0123456789ab",
        "s3://lesionops-artifacts/pipeline-root",
        "team-a",
        "lesionops-runner",
    )
    assert request.enable_caching is None  # kfp would otherwise overwrite every task's own caching option


def test_submit_creates_the_run_with_the_s3_fingerprint(
    s3: Any, kfp_api: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    host, posts = kfp_api
    data = _dataset(tmp_path / "data")
    uri = f"s3://{BUCKET}/raw"
    mirror_to_s3(data, uri)
    done = submit_training(_cluster_doc(), uri, host=host, experiment="lesionops")
    assert done["run_id"] == "run-1" and done["data_version"] == fingerprint(uri)
    assert posts["/apis/v2beta1/experiments"]["display_name"] == "lesionops"
    run = posts["/apis/v2beta1/runs"]
    assert run["experiment_id"] == "exp-1" and run["service_account"] == "lesionops-runner"
    assert run["runtime_config"]["pipeline_root"] == "s3://lesionops-artifacts/pipeline-root"
    parameters = run["runtime_config"]["parameters"]
    assert (parameters["source_uri"], parameters["data_version"]) == (uri, done["data_version"])
    # GPU tasks carry platform config, so kfp sends {pipeline_spec, platform_spec} (the KFP API's form)
    sent = run["pipeline_spec"]
    platform = sent["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert all(e["tolerations"][0]["key"] == "nvidia.com/gpu" for e in platform.values())
    tasks = sent["pipeline_spec"]["root"]["dag"]["tasks"]  # compiled from the same document, caching as set
    assert tasks["ingest-data"]["cachingOptions"] == {"enableCache": True}
    assert tasks["evaluate-model"]["cachingOptions"] == {}
    dry = submit_training(_cluster_doc(), uri, host=host, experiment="lesionops", dry_run=True)
    assert dry["dry_run"] and dry["arguments"]["data_version"] == done["data_version"]


def test_retrain_on_kubeflow_mirrors_the_dvc_folder_then_submits(
    s3: Any, kfp_api: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    from lesionops.retrain import launch_training
    from pipelines.schedule import RetrainConfig

    host, posts = kfp_api
    data = _dataset(tmp_path / "data")
    doc = _cluster_doc(f"kubeflow.source_uri=s3://{BUCKET}/training")
    cfg = RetrainConfig(target="kubeflow", kubeflow_host=host, data=str(data))
    version = fingerprint(data)  # what `dvc add` recorded after the feedback merge
    done = launch_training(doc, cfg, version)
    assert (done["run_id"], done["uploaded"], done["source_uri"]) == ("run-1", 4, f"s3://{BUCKET}/training")
    parameters = posts["/apis/v2beta1/runs"]["runtime_config"]["parameters"]
    assert (parameters["source_uri"], parameters["data_version"]) == (f"s3://{BUCKET}/training", version)
    assert posts["/apis/v2beta1/runs"]["display_name"] == f"retrain-{version[:12]}"
    with pytest.raises(ConfigError, match="kubeflow.source_uri is not set"):
        launch_training(_cluster_doc(), cfg, version)


def test_schedule_creates_the_monitoring_recurring_run(kfp_api: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    from pipelines.compile import compile_all, recurring_run_parameters
    from pipelines.schedule import submit_recurring_run

    host, posts = kfp_api
    doc = _cluster_doc()
    compile_all(tmp_path, doc, doc["serve"]["store_url"])
    rr_id = submit_recurring_run(
        host,
        tmp_path / "monitoring.yaml",
        recurring_run_parameters(doc, doc["serve"]["store_url"]),
        "lesionops",
        every_s=3600,
        pipeline_root="s3://lesionops-artifacts/pipeline-root",
        service_account="lesionops-runner",
    )
    body = posts["/apis/v2beta1/recurringruns"]
    assert rr_id == "rr-1" and body["experiment_id"] == "exp-1"
    assert int(body["trigger"]["periodic_schedule"]["interval_second"]) == 3600  # int64: kfp sends a number
    assert (body["no_catchup"], int(body["max_concurrency"]), body["service_account"]) == (True, 1, "lesionops-runner")
    assert body["runtime_config"]["pipeline_root"] == "s3://lesionops-artifacts/pipeline-root"
    assert body["runtime_config"]["parameters"]["store_url"] == doc["serve"]["store_url"]
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "lesionops-monitoring"
