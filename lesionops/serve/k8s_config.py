"""The `serve_k8s` section of params.yaml: how the serving app runs on Kubernetes.

Only names are settings here, never secret values: params.yaml is versioned and the manifests are
meant to be committed or reviewed. The store URL, the MLflow tracking URI and any credentials live
in one Secret created beside the manifests (`kubectl create secret generic …`); the pods read its
keys as environment variables (`secretKeyRef`). Checked when built, so a bad setting fails at
render time, not when a pod is scheduled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from components.common.errors import ConfigError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # names of namespaces, Services, Secrets…
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PULL_POLICIES = ("IfNotPresent", "Always", "Never")


def _optional_keys() -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_TOKEN": "mlflow-tracking-token",
        "AWS_ACCESS_KEY_ID": "aws-access-key-id",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-access-key",
    }


@dataclass(frozen=True)
class ServeK8sConfig:
    """The `serve_k8s` section (rendered by `lesionops deploy manifests`)."""

    name: str = "lesionops-serving"  # Deployment, Service, HPA, PDB, ConfigMap and label value
    namespace: str = "lesionops"  # infra/terraform's serving_service_accounts default: lesionops:lesionops-serving
    kubernetes_version: str = "1.33"  # the schemas the tests validate against (infra/terraform eks_kubernetes_version)
    image: str | None = None  # None: <kubeflow.image_repository>:<version>, the CPU image the pipeline tasks run
    image_pull_policy: str = "IfNotPresent"
    replicas: int = 2  # the HPA's minReplicas (and the Deployment's start)
    max_replicas: int = 6
    target_cpu_utilization: int = 70  # HPA: average CPU use, % of cpu_request
    min_available: int = 1  # PodDisruptionBudget: pods kept through node drains (below replicas)
    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "2Gi"
    memory_limit: str = "4Gi"
    startup_timeout_s: int = 300  # loading the champions from the registry before /health answers
    service_type: str = "ClusterIP"
    service_port: int = 80
    service_account: str = "lesionops-serving"
    role_arn: str | None = None  # IRSA: eks.amazonaws.com/role-arn of the service account (serving_role_arn)
    secret: str = "lesionops-serving"  # the Secret every key below is read from
    store_url_key: str | None = "store-url"  # → serve.store_url; None: serve.store_url from params
    tracking_uri_key: str | None = "mlflow-tracking-uri"  # → MLFLOW_TRACKING_URI; None: mlflow.tracking_uri
    optional_keys: dict[str, str] = field(default_factory=_optional_keys)  # env var → key, absent key = unset
    volume_claim: str | None = "lesionops-serving-data"  # ReadWriteMany PVC for serve.image_dir/feedback_dir
    data_path: str = "/data"  # where the claim is mounted (images/ and feedback/ under it)

    def __post_init__(self) -> None:
        self._check_names()
        self._check_numbers()
        self._check_resources()
        if self.service_type not in SERVICE_TYPES:
            raise ConfigError(f"serve_k8s.service_type: one of {list(SERVICE_TYPES)}, found {self.service_type!r}")
        if self.image_pull_policy not in PULL_POLICIES:
            raise ConfigError(
                f"serve_k8s.image_pull_policy: one of {list(PULL_POLICIES)}, found {self.image_pull_policy!r}"
            )
        if not self.data_path.startswith("/"):
            raise ConfigError(f"serve_k8s.data_path: an absolute path in the container, found {self.data_path!r}")
        if not re.fullmatch(r"\d+\.\d+", self.kubernetes_version):
            raise ConfigError(f"serve_k8s.kubernetes_version: MAJOR.MINOR, found {self.kubernetes_version!r}")

    def _check_names(self) -> None:
        names: dict[str, str | None] = {"name": self.name, "namespace": self.namespace, "secret": self.secret}
        names |= {"service_account": self.service_account, "volume_claim": self.volume_claim}
        for setting, value in names.items():
            if value is not None and not (_DNS_LABEL.match(value) and len(value) <= 63):
                raise ConfigError(f"serve_k8s.{setting}: a Kubernetes name (a-z, 0-9, '-', ≤ 63), found {value!r}")
        keys: dict[str, str | None] = {"store_url_key": self.store_url_key, "tracking_uri_key": self.tracking_uri_key}
        keys |= {f"optional_keys.{env}": key for env, key in self.optional_keys.items()}
        for where, key in keys.items():
            if key is not None and not _SECRET_KEY.match(str(key)):
                raise ConfigError(f"serve_k8s.{where}: a Secret key (letters, digits, '-', '_', '.'), found {key!r}")
        for env in self.optional_keys:
            if not _ENV_NAME.match(env) or env in ("LESIONOPS_STORE_URL", "MLFLOW_TRACKING_URI"):
                raise ConfigError(f"serve_k8s.optional_keys: {env!r} is not an environment variable it may set")

    def _check_numbers(self) -> None:
        checks = [
            (self.replicas >= 1, "replicas", "≥ 1", self.replicas),
            (self.max_replicas >= self.replicas, "max_replicas", f"≥ replicas ({self.replicas})", self.max_replicas),
            (1 <= self.target_cpu_utilization <= 100, "target_cpu_utilization", "1..100", self.target_cpu_utilization),
            (
                0 <= self.min_available < self.replicas,
                "min_available",
                f"0..replicas - 1 ({self.replicas - 1}): a budget of every pod blocks node drains for ever",
                self.min_available,
            ),
            (self.startup_timeout_s >= 10, "startup_timeout_s", "≥ 10", self.startup_timeout_s),
            (1 <= self.service_port <= 65535, "service_port", "1..65535", self.service_port),
        ]
        for ok, name, expected, found in checks:
            if not ok:
                raise ConfigError(f"serve_k8s.{name}: expected {expected}, found {found!r}")

    def _check_resources(self) -> None:
        for kind in ("cpu", "memory"):
            request = _quantity(getattr(self, f"{kind}_request"), f"serve_k8s.{kind}_request")
            limit = _quantity(getattr(self, f"{kind}_limit"), f"serve_k8s.{kind}_limit")
            if request > limit:
                raise ConfigError(f"serve_k8s.{kind}_request is above serve_k8s.{kind}_limit")


def _quantity(value: str, where: str) -> Any:
    from kubernetes.utils import parse_quantity

    try:
        return parse_quantity(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: not a Kubernetes quantity: {value!r}") from exc
