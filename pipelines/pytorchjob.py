"""Multi-node DDP training: a Kubeflow Training Operator PyTorchJob (kubeflow.org/v1) manifest.

The same `components.train_model` module the pipeline runs, under torchrun on `nodes` pods with
one process per GPU: `torchrun --nnodes N --nproc-per-node G --node-rank $(RANK) --master-addr
$(MASTER_ADDR) --master-port $(MASTER_PORT) -m components.train_model --patches s3://… --out s3://…`.
The operator sets RANK (the pod's index: Master 0, Workers 1…), MASTER_ADDR and MASTER_PORT on
every pod; Kubernetes expands the `$(…)` references, so the rendezvous is torchrun's static one
whatever the operator's version. Rank 0 alone logs to MLflow and writes `--out`
(components/train_model/distributed.py).

Pod size and GPUs per node are `kubeflow.stages.train_model` (pipelines/kubeflow.py); nodes, name,
shared memory and restarts are `kubeflow.pytorchjob`. Apply with `kubectl apply -f FILE`.
"""

from __future__ import annotations

import json
from typing import Any

from components.common.errors import ConfigError
from components.common.params import section
from components.common.tracking import TrackingConfig

API_VERSION = "kubeflow.org/v1"
CONTAINER = "pytorch"  # the operator finds the training container by this name
PORT_NAME = "pytorchjob-port"  # and the rendezvous port by this one


def torchrun_command(nodes: int, nproc_per_node: int, stage_args: list[str]) -> list[str]:
    return [
        "torchrun",
        f"--nnodes={nodes}",
        f"--nproc-per-node={nproc_per_node}",
        "--node-rank=$(RANK)",
        "--master-addr=$(MASTER_ADDR)",
        "--master-port=$(MASTER_PORT)",
        "-m",
        "components.train_model",
        *stage_args,
    ]


def _container(doc: dict[str, Any], command: list[str]) -> dict[str, Any]:
    from pipelines.kubeflow import from_params

    kube = from_params(doc)
    s, job = kube.settings("train_model"), kube.pytorchjob
    limits: dict[str, Any] = {"cpu": s.cpu_limit, "memory": s.memory_limit}
    if s.gpus:
        limits[kube.accelerator_type] = s.gpus
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": kube.image_for("train_model"),
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": [
            {"name": "MLFLOW_TRACKING_URI", "value": str(section(doc, "mlflow", TrackingConfig).tracking_uri)},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "ports": [{"name": PORT_NAME, "containerPort": job.master_port}],
        "resources": {"requests": {"cpu": s.cpu_request, "memory": s.memory_request}, "limits": limits},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    if job.env_secret:
        container["envFrom"] = [{"secretRef": {"name": job.env_secret}}]
    return container


def _replica(doc: dict[str, Any], replicas: int, command: list[str]) -> dict[str, Any]:
    from pipelines.kubeflow import from_params

    kube = from_params(doc)
    pod: dict[str, Any] = {
        "containers": [_container(doc, command)],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": kube.pytorchjob.shm_size}}],
    }
    if kube.service_account:
        pod["serviceAccountName"] = kube.service_account
    # Istio sidecars (Kubeflow profile namespaces) break pod-to-pod rendezvous: keep them out.
    return {
        "replicas": replicas,
        "restartPolicy": "OnFailure",
        "template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}, "spec": pod},
    }


def render(
    doc: dict[str, Any], patches: str, out: str, *, data_version: str = "unknown", name: str | None = None
) -> dict[str, Any]:
    """The PyTorchJob for training on `patches` (crop_patches output) into `out`, both s3:// URIs."""
    from components import __version__
    from pipelines.kubeflow import from_params
    from pipelines.submit import mlflow_problems

    problems = [
        f"{flag} {uri!r}: pods read and write s3://bucket/prefix, not paths on this machine"
        for flag, uri in (("--patches", patches), ("--out", out))
        if not uri.startswith("s3://")
    ]
    problems += mlflow_problems(section(doc, "mlflow", TrackingConfig))
    if problems:
        raise ConfigError("cannot render the PyTorchJob: " + "; ".join(problems))
    kube = from_params(doc)
    nodes, nproc = kube.pytorchjob.nodes, kube.nproc_per_node("train_model")
    command = torchrun_command(
        nodes,
        nproc,
        [
            "--patches",
            patches,
            "--out",
            out,
            "--data-version",
            data_version,
            "--params-json",
            json.dumps(doc, sort_keys=True),
        ],
    )
    replicas = {"Master": _replica(doc, 1, command)}
    if nodes > 1:
        replicas["Worker"] = _replica(doc, nodes - 1, command)
    metadata: dict[str, Any] = {
        "name": name or kube.pytorchjob.name,
        "labels": {
            "app.kubernetes.io/name": "lesionops",
            "app.kubernetes.io/component": "train_model",
            "app.kubernetes.io/version": __version__,
        },
        "annotations": {"lesionops/data-version": data_version, "lesionops/patches": patches},
    }
    if kube.namespace:
        metadata["namespace"] = kube.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "PyTorchJob",
        "metadata": metadata,
        "spec": {
            "nprocPerNode": str(nproc),
            "runPolicy": {"backoffLimit": kube.pytorchjob.backoff_limit},
            "pytorchReplicaSpecs": replicas,
        },
    }
