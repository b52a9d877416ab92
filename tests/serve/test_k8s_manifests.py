"""The serving app's Kubernetes manifests: rendered from params.yaml by `lesionops deploy manifests`
and validated offline against the Kubernetes JSON schemas (kubernetes-validate, strict mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from components.common.errors import ConfigError
from components.common.params import load_params, section
from components.common.settings import apply_overrides
from lesionops.cli import app
from lesionops.serve.config import ServeConfig
from lesionops.serve.k8s_config import ServeK8sConfig
from lesionops.serve.k8s_manifests import render
from tests.conftest import REPO

PARAMS = REPO / "params.yaml"
KINDS = {"ServiceAccount", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def _cli(out: Path, *sets: str) -> tuple[int, str, dict[str, dict[str, Any]]]:
    args = ["deploy", "manifests", "--out", str(out), "--params", str(PARAMS)]
    result = CliRunner().invoke(app, [*args, *(a for s in sets for a in ("--set", s))])
    written = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.yaml"))}
    return result.exit_code, " ".join(result.output.split()), written  # rich wraps long lines


def _render(*sets: str) -> dict[str, dict[str, Any]]:
    return render(apply_overrides(load_params(PARAMS), list(sets)))


def _container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [container] = manifests["deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_rendered_from_params_yaml_every_manifest_validates_strictly(tmp_path: Path) -> None:
    code, output, written = _cli(tmp_path)
    assert code == 0, output
    version = section(load_params(PARAMS), "serve_k8s", ServeK8sConfig).kubernetes_version
    assert {m["kind"] for m in written.values()} == KINDS
    for manifest in written.values():
        kubernetes_validate.validate(manifest, version, strict=True)  # raises on any schema error
    hpa, pdb = written["hpa"], written["pdb"]
    assert (hpa["apiVersion"], pdb["apiVersion"]) == ("autoscaling/v2", "policy/v1")


def test_the_validator_refuses_a_misspelt_field() -> None:
    """Strict mode catches what a cluster would ignore or refuse: the check above can fail."""
    deployment = _render()["deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)


def test_probes_ask_health_on_the_port_serve_listens_on() -> None:
    manifests = _render()
    container = _container(manifests)
    port = section(load_params(PARAMS), "serve", ServeConfig).port
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert manifests["service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_pods_run_lesionops_serve_on_the_rendered_params() -> None:
    manifests = _render()
    container = _container(manifests)
    assert container["args"] == [
        "serve",
        "--params",
        "/etc/lesionops/params.yaml",
        "--set",
        "serve.store_url=$(LESIONOPS_STORE_URL)",
    ]
    pod_doc = yaml.safe_load(manifests["configmap"]["data"]["params.yaml"])
    serve = section(pod_doc, "serve", ServeConfig)
    assert (serve.host, serve.image_dir, serve.feedback_dir) == ("0.0.0.0", "/data/images", "/data/feedback")
    assert pod_doc["mlflow"]["tracking_uri"] is None  # MLFLOW_TRACKING_URI from the Secret
    assert "store_url" not in pod_doc["serve"]


def test_every_env_value_comes_from_the_secret_and_none_is_written() -> None:
    secret = "s3cr3t-pa55"
    manifests = _render(f"serve.store_url=postgresql://lesionops:{secret}@db.lesionops.svc/serving")
    env = {e["name"]: e for e in _container(manifests)["env"]}
    assert {"LESIONOPS_STORE_URL", "MLFLOW_TRACKING_URI"} <= set(env)
    for entry in env.values():
        assert set(entry) == {"name", "valueFrom"}
        assert entry["valueFrom"]["secretKeyRef"]["name"] == "lesionops-serving"
    assert secret not in yaml.safe_dump(manifests)


def test_a_password_in_params_is_refused_where_it_would_be_written() -> None:
    url = "postgresql://lesionops:s3cr3t@db.lesionops.svc/serving"
    with pytest.raises(ConfigError, match="serve.store_url carries a password"):
        _render(f"serve.store_url={url}", "serve_k8s.store_url_key=null")


def test_sqlite_store_with_several_replicas_is_refused(tmp_path: Path) -> None:
    code, output, written = _cli(tmp_path, "serve_k8s.store_url_key=null")
    assert code != 0
    assert "serve.store_url is SQLite" in output and "serve_k8s.store_url_key" in output
    assert written == {}
    single = ("serve_k8s.store_url_key=null", "serve_k8s.replicas=1", "serve_k8s.max_replicas=1")
    manifests = _render(*single, "serve_k8s.min_available=0")
    assert "--set" not in _container(manifests)["args"]


def test_local_tracking_store_without_the_secret_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="mlflow.tracking_uri 'sqlite:///mlruns/mlflow.db'"):
        _render("serve_k8s.tracking_uri_key=null")
    served = _render("serve_k8s.tracking_uri_key=null", "mlflow.tracking_uri=http://mlflow.mlflow.svc:5000")
    assert "MLFLOW_TRACKING_URI" not in {e["name"] for e in _container(served)["env"]}


def test_set_override_changes_replicas_and_autoscaling(tmp_path: Path) -> None:
    code, output, written = _cli(tmp_path, "serve_k8s.replicas=3", "serve_k8s.max_replicas=9")
    assert code == 0, output
    assert written["deployment"]["spec"]["replicas"] == 3
    assert (written["hpa"]["spec"]["minReplicas"], written["hpa"]["spec"]["maxReplicas"]) == (3, 9)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("serve_k8s.replica=3", r"serve_k8s: unknown key\(s\) \['replica'\]"),
        ("serve_k8s.min_available=2", "serve_k8s.min_available"),
        ("serve_k8s.cpu_request='8'", "cpu_request is above serve_k8s.cpu_limit"),
        ("serve_k8s.volume_claim=null", "serve_k8s.volume_claim is null"),
    ],
)
def test_bad_settings_are_refused_naming_them(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _render(setting)


def test_role_arn_annotates_the_service_account() -> None:
    arn = "arn:aws:iam::123456789012:role/lesionops-prod-serving"
    account = _render(f"serve_k8s.role_arn={arn}")["serviceaccount"]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": arn}
    assert account["metadata"]["name"] == _render()["deployment"]["spec"]["template"]["spec"]["serviceAccountName"]


def test_serve_applies_set_overrides_as_the_pods_rely_on() -> None:
    """The pods pass the store URL with `--set`: an override must reach the serve section (a bad
    one is refused by ServeConfig before anything starts)."""
    result = CliRunner().invoke(app, ["serve", "--params", str(PARAMS), "--set", "serve.port=0"])
    assert result.exit_code != 0
    assert "serve.port: expected 1..65535, found 0" in " ".join(result.output.split())
