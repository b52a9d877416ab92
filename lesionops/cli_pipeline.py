"""`lesionops pipeline …`: run the training pipeline with kfp.local, or compile, submit and schedule it
on a Kubeflow cluster, and render the multi-node training job."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from components import STAGES
from components.common.params import section
from components.common.task import load_task
from lesionops.cli_common import (
    Commands,
    ParamsOpt,
    SetOpt,
    TaskOpt,
    console,
    generate_data,
    print_champions,
    task_params,
)

pipeline_app = Commands(
    prefix="pipeline",
    help="Run the Kubeflow pipeline locally (kfp.local), or compile, submit and schedule "
    "it on a Kubeflow cluster; render the multi-node training job.",
    no_args_is_help=True,
)


@pipeline_app.command("run")
def pipeline_run(
    source: Annotated[
        Optional[Path],
        typer.Option(
            help="raw dataset folder (default: the task's task.data, else data/, or a preset's synth.out, "
            "generated when absent)"
        ),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    pipeline_root: Annotated[Path, typer.Option(help="where kfp.local keeps task outputs")] = Path(".kfp_local"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Run the training pipeline locally with kfp.local (same components as on Kubeflow)."""
    from lesionops.datavc import data_version
    from pipelines.local import run_training

    doc = task_params(params, task, overrides, "pipeline run")
    if source is None:
        source = _default_source(doc, task)
    started = time.monotonic()
    log = pipeline_root / "pipeline.log"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    try:
        with console.status(f"kfp.local: running the training pipeline (task log: {log})"):
            run_training(source, doc, pipeline_root, data_version(Path(f"{source}.dvc")), log)
    except RuntimeError as exc:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        console.print(f"{tail}\n[bold red]pipeline failed:[/] {exc}\nfull log: {log}")
        raise typer.Exit(1) from None
    reported = tuple(f"{s}:" for s in STAGES)
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.lstrip().startswith(reported) or "Skipping conditional" in line:
            console.print(f"  {line.strip()}")
    console.print(f"pipeline finished in {time.monotonic() - started:.0f} s (task log: {log})")
    print_champions(doc)


def _default_source(doc: dict[str, Any], task: str | None) -> Path:
    """task.data (a task file's own folder), else a preset's synthetic set (generated when absent),
    else data/."""
    from lesionops.presets import synth_settings

    if (data := load_task(doc).data) is not None:
        return Path(data)
    if task is None:
        return Path("data")
    source = Path(synth_settings(doc).out)
    if not source.exists():
        console.print(f"no dataset at {source}: generating the {task} preset's synthetic data")
        generate_data(doc, source)
    return source


@pipeline_app.command("compile")
def pipeline_compile(
    out_dir: Annotated[Path, typer.Option(help="folder for the compiled YAML")] = Path("pipelines/compiled"),
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Compile the training and monitoring pipelines to Kubeflow YAML (image, resources, GPUs,
    retries and caching from params.yaml `kubeflow`) and the monitoring recurring-run body."""
    from pipelines.compile import compile_all
    from pipelines.local import portable_params

    doc = task_params(params, task, overrides, "pipeline compile")
    for path in compile_all(out_dir, portable_params(doc), _store_url(doc)):
        console.print(f"compiled {path}")


def _store_url(doc: dict[str, Any]) -> str:
    """The serving store the monitoring pipeline reads (the serving layer owns `serve`)."""
    from lesionops.serve.config import ServeConfig

    return section(doc, "serve", ServeConfig).store_url


@pipeline_app.command("submit")
def pipeline_submit(
    source: Annotated[str, typer.Option(help="training data the pods read: s3://bucket/prefix")],
    host: Annotated[
        Optional[str],
        typer.Option(
            help="KFP API endpoint (default: retrain.kubeflow_host, then "
            "KF_PIPELINES_ENDPOINT / the in-cluster service)"
        ),
    ] = None,
    experiment: Annotated[Optional[str], typer.Option(help="experiment (default: retrain.experiment)")] = None,
    run_name: Annotated[Optional[str], typer.Option(help="run name (default: <task>-<data version>)")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="fingerprint, check and print the run; contact no host")
    ] = False,
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Create a training run on Kubeflow: the data's fingerprint is the run's data_version (the
    cache key), outputs go to kubeflow.pipeline_root; credentials from the kube config / KF_PIPELINES_*."""
    from pipelines.schedule import RetrainConfig
    from pipelines.submit import submit_training

    doc = task_params(params, task, overrides, "pipeline submit")
    retrain = section(doc, "retrain", RetrainConfig)
    done = submit_training(
        doc,
        source,
        host=host or retrain.kubeflow_host,
        experiment=experiment or retrain.experiment,
        run_name=run_name,
        dry_run=dry_run,
    )
    console.print_json(json.dumps(done))


@pipeline_app.command("schedule")
def pipeline_schedule(
    compiled: Annotated[Path, typer.Option(help="compiled monitoring pipeline")] = Path(
        "pipelines/compiled/monitoring.yaml"
    ),
    host: Annotated[Optional[str], typer.Option(help="KFP API endpoint (default: retrain.kubeflow_host)")] = None,
    every: Annotated[Optional[str], typer.Option(help="interval, e.g. 1h (default: retrain.every)")] = None,
    cron: Annotated[Optional[str], typer.Option(help="cron expression instead of --every")] = None,
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Create the monitoring pipeline's recurring run on Kubeflow (a window of serve.store_url each time)."""
    from pipelines.compile import recurring_run_parameters
    from pipelines.kubeflow import KubeflowConfig
    from pipelines.schedule import RetrainConfig, parse_interval, submit_recurring_run

    doc = task_params(params, task, overrides, "pipeline schedule")
    retrain, kube = section(doc, "retrain", RetrainConfig), section(doc, "kubeflow", KubeflowConfig)
    every_s = None if cron else parse_interval(every or retrain.every)
    run_id = submit_recurring_run(
        host or retrain.kubeflow_host,
        compiled,
        recurring_run_parameters(doc, _store_url(doc)),
        retrain.experiment,
        every_s=every_s,
        cron=cron,
        pipeline_root=kube.pipeline_root,
        service_account=kube.service_account,
        namespace=kube.namespace,
    )
    console.print(f"recurring run {run_id} created ({cron or f'every {every_s:.0f} s'})")


@pipeline_app.command("pytorchjob")
def pipeline_pytorchjob(
    patches: Annotated[str, typer.Option(help="crop_patches output the job trains on (s3://…)")],
    model_out: Annotated[str, typer.Option(help="where rank 0 writes the model (s3://…)")],
    out: Annotated[Path, typer.Option(help="manifest file to write (kubectl apply -f FILE)")] = Path("pytorchjob.yaml"),
    data_version: Annotated[str, typer.Option(help="the raw data's version, recorded with the run")] = "unknown",
    name: Annotated[Optional[str], typer.Option(help="job name (default: kubeflow.pytorchjob.name)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Write a Kubeflow Training Operator PyTorchJob: train_model under torchrun on
    kubeflow.pytorchjob.nodes pods with kubeflow.stages.train_model.gpus GPUs each (DDP)."""
    import yaml

    from pipelines.pytorchjob import render

    doc = task_params(params, task, overrides, "pipeline pytorchjob")
    job = render(doc, patches, model_out, data_version=data_version, name=name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(job, sort_keys=False, width=120), encoding="utf-8")
    spec = job["spec"]
    console.print(
        f"wrote {out}: {1 + spec['pytorchReplicaSpecs'].get('Worker', {}).get('replicas', 0)} node(s) x "
        f"{spec['nprocPerNode']} process(es)  (kubectl apply -f {out})"
    )
