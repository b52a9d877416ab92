"""The multi-node training manifest: a Training Operator PyTorchJob running train_model under torchrun."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from components import __version__
from components.common.errors import ConfigError
from components.common.params import load_params
from components.common.settings import apply_overrides
from pipelines.pytorchjob import render
from tests.conftest import REPO

PATCHES, OUT = "s3://lesionops-prod-artifacts/runs/r1/crop_patches", "s3://lesionops-prod-artifacts/runs/r1/train"
CLUSTER = [
    "mlflow.tracking_uri=http://mlflow.mlflow.svc:5000",
    "mlflow.artifact_root=s3://lesionops-prod-artifacts/mlflow",
    "kubeflow.namespace=lesionops",
    "kubeflow.service_account=lesionops-runner",
    "kubeflow.pytorchjob.env_secret=lesionops-aws",
]


def _doc(*sets: str) -> dict[str, Any]:
    return apply_overrides(load_params(REPO / "params.yaml"), [*CLUSTER, *sets])


def test_master_and_workers_run_train_model_under_torchrun() -> None:
    doc = _doc("kubeflow.pytorchjob.nodes=3", "kubeflow.stages.train_model.gpus=4")
    job = render(doc, PATCHES, OUT, data_version="1b30aeb8.dir")
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert job["metadata"]["namespace"] == "lesionops"
    assert job["metadata"]["annotations"]["lesionops/data-version"] == "1b30aeb8.dir"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {k: r["replicas"] for k, r in replicas.items()} == {"Master": 1, "Worker": 2}
    assert job["spec"]["nprocPerNode"] == "4"
    for replica in replicas.values():
        pod = replica["template"]["spec"]
        [container] = pod["containers"]
        assert container["name"] == "pytorch"
        assert container["image"] == f"ghcr.io/lesionops/lesionops:{__version__}-cuda"
        cmd = container["command"]
        assert cmd[:6] == [
            "torchrun",
            "--nnodes=3",
            "--nproc-per-node=4",
            "--node-rank=$(RANK)",
            "--master-addr=$(MASTER_ADDR)",
            "--master-port=$(MASTER_PORT)",
        ]
        assert cmd[6:8] == ["-m", "components.train_model"]
        args = dict(zip(cmd[8::2], cmd[9::2]))
        assert (args["--patches"], args["--out"], args["--data-version"]) == (PATCHES, OUT, "1b30aeb8.dir")
        assert json.loads(args["--params-json"])["kubeflow"]["stages"]["train_model"]["gpus"] == 4
        resources = container["resources"]
        assert resources["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 4}
        assert resources["requests"] == {"cpu": "4", "memory": "16Gi"}
        assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.mlflow.svc:5000"} in container["env"]
        assert container["envFrom"] == [{"secretRef": {"name": "lesionops-aws"}}]
        assert container["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
        assert pod["serviceAccountName"] == "lesionops-runner"
        assert replica["restartPolicy"] == "OnFailure"


def test_one_node_is_a_master_only_and_cpu_training_uses_the_cpu_image() -> None:
    job = render(_doc("kubeflow.pytorchjob.nodes=1", "kubeflow.stages.train_model.gpus=0"), PATCHES, OUT)
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert list(replicas) == ["Master"] and job["spec"]["nprocPerNode"] == "1"
    [container] = replicas["Master"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/lesionops/lesionops:{__version__}"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert "--nnodes=1" in container["command"]


@pytest.mark.parametrize(
    ("sets", "patches", "message"),
    [
        ([], "outputs/crop_patches", "--patches 'outputs/crop_patches'"),
        (["mlflow.tracking_uri=sqlite:///mlruns/mlflow.db"], PATCHES, "mlflow.tracking_uri"),
        (["mlflow.artifact_root=mlruns/artifacts"], PATCHES, "mlflow.artifact_root"),
    ],
)
def test_what_pods_cannot_reach_is_refused(sets: list[str], patches: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        render(_doc(*sets), patches, OUT)


def test_cli_writes_the_manifest(tmp_path: Path) -> None:
    from lesionops.cli import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_doc()))
    out = tmp_path / "job.yaml"
    result = CliRunner().invoke(
        app,
        [
            "pipeline",
            "pytorchjob",
            "--patches",
            PATCHES,
            "--model-out",
            OUT,
            "--out",
            str(out),
            "--params",
            str(params),
        ],
    )
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(out.read_text())
    assert job["kind"] == "PyTorchJob" and job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1
    refused = CliRunner().invoke(
        app,
        [
            "pipeline",
            "pytorchjob",
            "--patches",
            "local/dir",
            "--model-out",
            OUT,
            "--out",
            str(tmp_path / "no.yaml"),
            "--params",
            str(params),
        ],
    )
    assert refused.exit_code == 2 and "pods read and write s3://" in " ".join(refused.output.split())
    assert not (tmp_path / "no.yaml").exists()
