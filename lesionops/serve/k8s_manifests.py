"""Kubernetes manifests for the serving app, rendered from one params document (`serve_k8s`).

What `lesionops deploy manifests` writes: a ServiceAccount (S3 through IRSA when `role_arn` is
set), a ConfigMap holding the params document the pods run with (so they serve exactly what was
rendered, `--task` and `--set` included), a Deployment running `lesionops serve` with startup,
readiness and liveness probes on `/health`, a Service, an autoscaling/v2 HorizontalPodAutoscaler
and a policy/v1 PodDisruptionBudget.

Secret values never appear: the store URL and the MLflow tracking URI come from the Secret
`serve_k8s.secret` as environment variables; Kubernetes expands `$(LESIONOPS_STORE_URL)` in the
container's arguments, so the store reaches `--set serve.store_url=…` without passing through the
manifests. The champions are pulled from the MLflow registry by alias, as `lesionops serve` always
does. Settings that cannot work with several pods are refused here, naming the setting.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import yaml

from components import __version__
from components.common.errors import ConfigError
from components.common.kfp_image import image
from components.common.params import section
from components.common.tracking import TrackingConfig
from lesionops.serve.config import ServeConfig
from lesionops.serve.k8s_config import ServeK8sConfig

PARAMS_DIR = "/etc/lesionops"
STORE_ENV, TRACKING_ENV = "LESIONOPS_STORE_URL", "MLFLOW_TRACKING_URI"
PROBE_PERIOD_S = 5
RUN_AS_USER = 10001  # the image's non-root user (Dockerfile)


def render(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifests by file stem (serviceaccount, configmap, deployment, service, hpa, pdb)."""
    cfg = section(doc, "serve_k8s", ServeK8sConfig)
    pod_doc = pod_params(doc, cfg)
    problems = refusals(pod_doc, cfg)
    if problems:
        raise ConfigError("cannot render the serving manifests: " + "; ".join(problems))
    params_text = yaml.safe_dump(pod_doc, sort_keys=False, width=120)
    serve = section(pod_doc, "serve", ServeConfig)
    return {
        "serviceaccount": _service_account(cfg),
        "configmap": _object("v1", "ConfigMap", cfg, data={"params.yaml": params_text}),
        "deployment": _deployment(doc, cfg, serve.port, hashlib.sha256(params_text.encode()).hexdigest()),
        "service": _service(cfg),
        "hpa": _hpa(cfg),
        "pdb": _object(
            "policy/v1",
            "PodDisruptionBudget",
            cfg,
            spec={"minAvailable": cfg.min_available, "selector": {"matchLabels": selector(cfg)}},
        ),
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's params.yaml) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(manifest: dict[str, Any]) -> str:
    """One manifest as YAML in the order it was built."""
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=120)


def pod_params(doc: dict[str, Any], cfg: ServeK8sConfig) -> dict[str, Any]:
    """The params the pods run with: bound on every interface, uploads and reviews on the shared
    claim, and the store / tracking URI left out where they come from the Secret (a value given
    to the render command must not end up in the ConfigMap)."""
    out = copy.deepcopy(doc)
    serve = out.setdefault("serve", {})
    serve["host"] = "0.0.0.0"  # noqa: S104 - inside the pod; the Service is what is exposed
    if cfg.volume_claim:
        serve["image_dir"], serve["feedback_dir"] = f"{cfg.data_path}/images", f"{cfg.data_path}/feedback"
    if cfg.store_url_key:
        serve.pop("store_url", None)
    if cfg.tracking_uri_key:
        out.setdefault("mlflow", {})["tracking_uri"] = None  # components.common.tracking: null = the env var
    return out


def refusals(pod_doc: dict[str, Any], cfg: ServeK8sConfig) -> list[str]:
    """What would break with these pods, each naming the setting to change."""
    serve, tracking = section(pod_doc, "serve", ServeConfig), section(pod_doc, "mlflow", TrackingConfig)
    problems = []
    several = cfg.max_replicas > 1
    if not cfg.store_url_key and serve.store_url.startswith("sqlite:") and several:
        problems.append(
            f"serve.store_url is SQLite ({serve.store_url}) and serve_k8s.store_url_key is null: "
            f"{cfg.max_replicas} pods cannot share one SQLite file; set serve_k8s.store_url_key "
            "(a postgresql:// URL in the Secret) or serve_k8s.max_replicas to 1"
        )
    uri = str(tracking.tracking_uri or "")
    if not cfg.tracking_uri_key and ("://" not in uri or uri.startswith(("sqlite:", "file:"))):
        problems.append(
            f"mlflow.tracking_uri {uri or None!r} and serve_k8s.tracking_uri_key is null: pods need the shared "
            "tracking server (http(s)://…); set serve_k8s.tracking_uri_key or mlflow.tracking_uri"
        )
    if not cfg.volume_claim and several:
        problems.append(
            "serve_k8s.volume_claim is null: with several pods an upload stored by one is missing on the "
            "reviewer's; name a ReadWriteMany PersistentVolumeClaim or set serve_k8s.max_replicas to 1"
        )
    for where, value in (("serve.store_url", serve.store_url), ("mlflow.tracking_uri", uri)):
        if _has_password(value):
            problems.append(f"{where} carries a password: put the URL in the Secret ({cfg.secret}), not in params")
    return problems


def _has_password(url: str | None) -> bool:
    from urllib.parse import urlsplit

    return bool(url) and "://" in str(url) and urlsplit(str(url)).password is not None


def selector(cfg: ServeK8sConfig) -> dict[str, str]:
    """The labels the Service, HPA and PDB find the pods by (never the version: selectors are
    immutable, and a rollout must not orphan the old pods)."""
    return {"app.kubernetes.io/name": "lesionops", "app.kubernetes.io/instance": cfg.name}


def _labels(cfg: ServeK8sConfig) -> dict[str, str]:
    return {**selector(cfg), "app.kubernetes.io/component": "serving", "app.kubernetes.io/version": __version__}


def _object(api_version: str, kind: str, cfg: ServeK8sConfig, **body: Any) -> dict[str, Any]:
    metadata = {"name": cfg.name, "namespace": cfg.namespace, "labels": _labels(cfg)}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


def _service_account(cfg: ServeK8sConfig) -> dict[str, Any]:
    account = _object("v1", "ServiceAccount", cfg)
    account["metadata"]["name"] = cfg.service_account
    if cfg.role_arn:
        account["metadata"]["annotations"] = {"eks.amazonaws.com/role-arn": cfg.role_arn}
    return account


def _env(cfg: ServeK8sConfig) -> list[dict[str, Any]]:
    """Every value from the Secret by reference; the optional keys may be absent (IRSA instead of
    AWS keys, a tracking server without a token)."""
    required = [(STORE_ENV, cfg.store_url_key), (TRACKING_ENV, cfg.tracking_uri_key)]
    env = [_secret_env(name, cfg.secret, key, optional=False) for name, key in required if key]
    env += [_secret_env(name, cfg.secret, key, optional=True) for name, key in cfg.optional_keys.items()]
    return env


def _secret_env(name: str, secret: str, key: str, *, optional: bool) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": optional}}}


def _probes() -> dict[str, Any]:
    """Readiness takes a pod out of the Service while it cannot answer; liveness restarts a hung
    one; both wait for the startup probe, which allows for loading the champions."""
    return {
        "readinessProbe": {**_health_check(), "timeoutSeconds": 5, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**_health_check(), "timeoutSeconds": 5, "periodSeconds": 20, "failureThreshold": 3},
    }


def _health_check() -> dict[str, Any]:
    """A new mapping each time: a shared one would be written as a YAML anchor and alias."""
    return {"httpGet": {"path": "/health", "port": "http"}}


def _container(doc: dict[str, Any], cfg: ServeK8sConfig, port: int) -> dict[str, Any]:
    from pipelines.kubeflow import from_params

    args = ["serve", "--params", f"{PARAMS_DIR}/params.yaml"]
    if cfg.store_url_key:
        args += ["--set", f"serve.store_url=$({STORE_ENV})"]  # expanded by Kubernetes from the env below
    mounts = [{"name": "params", "mountPath": PARAMS_DIR, "readOnly": True}]
    if cfg.volume_claim:
        mounts.append({"name": "data", "mountPath": cfg.data_path})
    startup = {**_health_check(), "periodSeconds": PROBE_PERIOD_S}
    return {
        "name": "serve",
        "image": cfg.image or image(from_params(doc).image_repository),
        "imagePullPolicy": cfg.image_pull_policy,
        "args": args,
        "env": _env(cfg),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": cfg.cpu_request, "memory": cfg.memory_request},
            "limits": {"cpu": cfg.cpu_limit, "memory": cfg.memory_limit},
        },
        "startupProbe": {**startup, "failureThreshold": -(-cfg.startup_timeout_s // PROBE_PERIOD_S)},
        **_probes(),
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }


def _deployment(doc: dict[str, Any], cfg: ServeK8sConfig, port: int, params_sha: str) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": "params", "configMap": {"name": cfg.name}}]
    if cfg.volume_claim:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": cfg.volume_claim}})
    pod = {
        "serviceAccountName": cfg.service_account,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(doc, cfg, port)],
        "volumes": volumes,
    }
    template = {"metadata": {"labels": _labels(cfg), "annotations": {"lesionops/params-sha256": params_sha}}}
    return _object(
        "apps/v1",
        "Deployment",
        cfg,
        spec={
            "replicas": cfg.replicas,
            "selector": {"matchLabels": selector(cfg)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {**template, "spec": pod},
        },
    )


def _service(cfg: ServeK8sConfig) -> dict[str, Any]:
    port = {"name": "http", "port": cfg.service_port, "targetPort": "http", "protocol": "TCP"}
    return _object("v1", "Service", cfg, spec={"type": cfg.service_type, "selector": selector(cfg), "ports": [port]})


def _hpa(cfg: ServeK8sConfig) -> dict[str, Any]:
    target = {"type": "Utilization", "averageUtilization": cfg.target_cpu_utilization}
    return _object(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        cfg,
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": cfg.name},
            "minReplicas": cfg.replicas,
            "maxReplicas": cfg.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    )
