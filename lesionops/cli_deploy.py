"""`lesionops deploy …`: the serving app's Kubernetes manifests, rendered from params.yaml `serve_k8s`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lesionops.cli_common import Commands, ParamsOpt, SetOpt, TaskOpt, console, task_params

deploy_app = Commands(
    prefix="deploy",
    help="Render the serving app's Kubernetes manifests (params.yaml serve_k8s).",
    no_args_is_help=True,
)


@deploy_app.command("manifests")
def deploy_manifests(
    out: Annotated[Path, typer.Option(help="folder for the YAML files (kubectl apply -f FOLDER)")] = Path("deploy/k8s"),
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Write ServiceAccount, ConfigMap (the params the pods run with), Deployment (`lesionops serve`,
    probes on /health), Service, HorizontalPodAutoscaler and PodDisruptionBudget: one file each.
    Secret values are never written: the pods read serve_k8s.secret's keys."""
    from components.common.params import section
    from lesionops.serve.k8s_config import ServeK8sConfig
    from lesionops.serve.k8s_manifests import render, to_yaml

    doc = task_params(params, task, overrides, "deploy manifests")
    manifests = render(doc)
    out.mkdir(parents=True, exist_ok=True)
    for stem, manifest in manifests.items():
        path = out / f"{stem}.yaml"
        path.write_text(to_yaml(manifest), encoding="utf-8")
        console.print(f"wrote {path} ({manifest['kind']})")
    cfg = section(doc, "serve_k8s", ServeK8sConfig)
    keys = [k for k in (cfg.store_url_key, cfg.tracking_uri_key) if k]
    console.print(
        f"before `kubectl apply -f {out}`: namespace {cfg.namespace}, Secret {cfg.secret} with "
        f"{', '.join(keys) or 'no required keys'}"
        + (f", and PersistentVolumeClaim {cfg.volume_claim} (ReadWriteMany)" if cfg.volume_claim else "")
    )
