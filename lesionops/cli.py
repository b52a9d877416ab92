"""`lesionops`: every stage, the synthetic data generator, and the pipeline drivers in one CLI.

Stage commands forward their arguments untouched to `python -m components.<stage>`, so the CLI,
DVC and Kubeflow all run the same entry point.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from components import STAGES
from components.common.cli import error_line, run_main
from components.common.errors import ConfigError, LesionOpsError
from components.common.params import params_hash, section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from lesionops.cli_common import (
    Commands,
    ParamsOpt,
    SetOpt,
    TaskOpt,
    console,
    generate_data,
    print_champion,
    print_champions,
    print_subgroups,
    task_params,
)
from lesionops.cli_data import OLD_NAMES, data_app, renamed
from lesionops.cli_deploy import deploy_app
from lesionops.cli_pipeline import pipeline_app, pipeline_run
from lesionops.cli_security import install as install_security
from lesionops.cli_task import task_app

app = Commands(
    help="LesionOps: labelImg data → validated patches → gated, promoted models.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(task_app, name="task")
app.add_typer(data_app, name="data")
app.add_typer(deploy_app, name="deploy")
for _old, _command in OLD_NAMES.items():
    app.command(_old, hidden=True)(renamed(_old, f"data {_old.removeprefix('data-')}", _command))
install_security(app)


def _stage_command(stage: str) -> None:
    def forward(ctx: typer.Context) -> None:
        module = importlib.import_module(f"components.{stage}.__main__")
        run_main(module.main, list(ctx.args))

    forward.__doc__ = f"Run the {stage} stage (`--help` lists its options)."
    app.command(
        stage, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
    )(forward)


for _stage in STAGES:
    _stage_command(_stage)


@app.command()
def synth(
    out: Annotated[Optional[Path], typer.Option(help="output dataset folder (default: synth.out, i.e. data)")] = None,
    n_images: Annotated[Optional[int], typer.Option(help="number of photos")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed (same seed → same bytes)")] = None,
    width: Annotated[Optional[int], typer.Option(help="image width")] = None,
    height: Annotated[Optional[int], typer.Option(help="image height")] = None,
    priors: Annotated[Optional[str], typer.Option(help="class priors, comma-separated, in task order")] = None,
    defects: Annotated[
        bool,
        typer.Option(
            "--defects", help="then break ~35 images, one known defect each (writes <out>/defects.json: code → files)"
        ),
    ] = False,
    shift: Annotated[
        Optional[str],
        typer.Option(
            help="instead: a stream of skin photos as a clinic would upload "
            "them, under a shift (none, lighting, blur, skin_tone, camera, "
            "class_prior, wrong_modality) → <out>/images, stream.csv"
        ),
    ] = None,
    severity: Annotated[float, typer.Option(help="--shift strength; 1 = a change a clinician would notice")] = 1.0,
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
) -> None:
    """Generate a synthetic dataset: labelImg skin-lesion photos (seed 002) unless --task picks another
    seed's generator (acupoint hands, chest X-rays, CT DICOM slices, monkeypox photos); with --shift,
    a shifted upload stream for drift monitoring."""
    from lesionops.presets import synth_settings

    doc = task_params(params, task, None, "synth")
    if shift is not None:
        _shifted_stream(doc, out or Path("shifted"), shift, severity, n_images, seed, width, height)
        return
    settings = synth_settings(doc)
    if defects and settings.generator != "skin":
        raise ConfigError(f"--defects breaks labelImg skin photos only, not the {settings.generator} generator")
    out = out if out is not None else Path(settings.out)
    generate_data(
        doc,
        out,
        n_images=n_images,
        seed=seed,
        image_width=width,
        image_height=height,
        class_priors=tuple(float(p) for p in priors.split(",")) if priors else None,
    )
    if defects:
        from lesionops.synth.defects import inject_defects

        injected = inject_defects(out, seed if seed is not None else settings.seed)
        (out / "defects.json").write_text(json.dumps(injected, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        console.print(
            f"synth: injected {len(injected)} defect codes into {sum(map(len, injected.values()))} "
            f"files → {out / 'defects.json'}"
        )


def _shifted_stream(
    doc: dict[str, Any],
    out: Path,
    shift: str,
    severity: float,
    n: int | None,
    seed: int | None,
    width: int | None,
    height: int | None,
) -> None:
    from lesionops.synth.shift import ShiftConfig, write_stream

    options = {k: v for k, v in (("n", n), ("seed", seed), ("width", width), ("height", height)) if v is not None}
    done = write_stream(out, ShiftConfig(shift=shift, severity=severity, classes=load_task(doc).classes, **options))
    console.print(
        f"synth: {sum(done['per_label'].values())} '{shift}' images (severity {severity}) → "
        f"{out / 'images'}, {out / 'stream.csv'}"
    )


@app.command()
def champion(params: ParamsOpt = Path("params.yaml"), task: TaskOpt = None, overrides: SetOpt = None) -> None:
    """Show the champion of each model the task trains: registry version, aliases and test metrics."""
    if not print_champions(task_params(params, task, overrides, "champion")):
        raise typer.Exit(1)


@app.command()
def rollback(
    kind: Annotated[str, typer.Option(help="classifier or detector")] = "classifier",
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")] = "",
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Move `champion` back to the `previous` version (recorded in the promotion audit log)."""
    from components.promote_model.config import PromoteConfig
    from components.promote_model.rollback import rollback as do_rollback

    doc = task_params(params, task, overrides, "rollback")
    done = do_rollback(
        section(doc, "promote_model", PromoteConfig), section(doc, "mlflow", TrackingConfig), kind, reason
    )
    console.print(
        f"{done['name']}: @{done['alias']} v{done['from_version']} → v{done['to_version']}; "
        f"@{done['previous_alias']} → {done['previous_version'] or 'removed'} (audit: {done['audit_log']})"
    )


@app.command()
def serve(
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    host: Annotated[Optional[str], typer.Option(help="bind address (default: serve.host)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default: serve.port)")] = None,
    overrides: SetOpt = None,
) -> None:
    """Serve the champion models (classify, detect, feedback, expert review) with FastAPI + uvicorn.

    Every route that stores or shows data needs a personal token (`lesionops users add NAME --role
    ROLE`) or an OIDC token (serve.oidc_issuer); README "Security"."""
    import dataclasses
    import os

    import uvicorn

    from components.common.scope import ScopeConfig
    from components.common.store import Store
    from components.common.task import load_task
    from components.crop_patches.config import CropConfig
    from components.promote_model.config import PromoteConfig
    from lesionops.serve.app import create_app
    from lesionops.serve.config import ServeConfig

    doc = task_params(params, task, overrides, "serve")
    cfg = section(doc, "serve", ServeConfig)
    cfg = dataclasses.replace(cfg, host=host or cfg.host, port=port if port is not None else cfg.port)
    api = create_app(
        cfg,
        section(doc, "mlflow", TrackingConfig),
        load_task(doc),
        crop=section(doc, "crop_patches", CropConfig),
        promote=section(doc, "promote_model", PromoteConfig) if "promote_model" in doc else None,
        scope=section(doc, "serve_scope", ScopeConfig) if "serve_scope" in doc else None,
    )
    store = Store(cfg.store_url)  # a store URL that cannot work ends here, before "serving on"
    active = [u for u in store.list_users() if u["revoked_at"] is None]
    store.close()
    url = cfg.public_url or f"http://{cfg.host}:{cfg.port}/"
    console.print(f"LesionOps serving on {url}  (review: {url.rstrip('/')}/review, API docs: {url.rstrip('/')}/docs)")
    if os.environ.get("LESIONOPS_TOKEN"):
        console.print(
            "[yellow]LESIONOPS_TOKEN is no longer read: one shared secret cannot say who did what. Give "
            "each person their own token (`lesionops users add NAME --role clinician|reviewer|admin`) "
            "and unset it.[/]"
        )
    if not active and not cfg.oidc_issuer:
        console.print("[yellow]No users yet: nobody can sign in. Add one: lesionops users add NAME --role ROLE[/]")
    uvicorn.run(api, host=cfg.host, port=cfg.port, log_level="info")


@app.command(hidden=True)
def kfold(
    patches: Annotated[Path, typer.Option(help="crop_patches output with folds.parquet")],
    out: Annotated[Path, typer.Option(help="report folder")] = Path("outputs/kfold"),
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
    max_folds: Annotated[Optional[int], typer.Option(help="first N (repeat, fold) pairs; 0 = all")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="CNN epochs per fold")] = None,
) -> None:
    """Renamed: `lesionops crossval` (the k-fold stage); this alias stays for one release."""
    from components.crossval.__main__ import main as crossval

    console.print(
        "[yellow]`lesionops kfold` is now the crossval stage: lesionops crossval --patches DIR --out DIR "
        "--set crossval.enabled=true[/]"
    )
    sets = [
        "crossval.enabled=true",
        *(overrides or []),
        *(f"crossval.{k}={v}" for k, v in (("max_folds", max_folds), ("epochs", epochs)) if v is not None),
    ]
    run_main(
        crossval,
        [
            "--params",
            str(params),
            *(["--task", task] if task else []),
            *(a for s in sets for a in ("--set", s)),
            "--patches",
            str(patches),
            "--out",
            str(out),
        ],
        "crossval",
    )
    console.print((out / "kfold_report.md").read_text(encoding="utf-8"))


@app.command()
def monitor(
    every: Annotated[
        Optional[str], typer.Option(help="interval between windows, e.g. 15m, 1h (default: retrain.every)")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="check one window and exit (for cron / CI)")] = False,
    reference: Annotated[
        Optional[Path],
        typer.Option(help="drift reference folder (default: the champion's `reference/` artifacts in MLflow)"),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Watch the serving store: drift tests on each new window, then the retrain policy; a "retrain"
    merges accepted feedback into the data and runs the training pipeline."""
    from lesionops.retrain import monitor_cycle
    from pipelines.schedule import RetrainConfig, parse_interval

    doc = task_params(params, task, overrides, "monitor")
    interval = parse_interval(every or section(doc, "retrain", RetrainConfig).every)
    while True:
        try:
            result = monitor_cycle(doc, reference=reference)
        except LesionOpsError as exc:  # one bad window must not end a schedule; --once ends on it
            if once:
                raise
            console.print(f"[bold red]{error_line(exc, 'monitor window')}[/]")
        else:
            drift, decision = result["drift"], result["decision"]
            console.print(
                f"{drift['verdict']} on {drift['counts']['usable']} image(s); retrain="
                f"{'yes' if decision['retrain'] else 'no'} alert={'yes' if decision['alert'] else 'no'}: "
                f"{'; '.join(decision['reasons'])}  ({result['out']})"
            )
            if "retrain" in result:
                console.print(f"retrain launched: {result['retrain']}")
                print_champions(doc)
        if once:
            return
        time.sleep(interval)


@app.command()
def demo(
    n_images: Annotated[Optional[int], typer.Option(help="synthetic photos (default: params synth)")] = None,
    source: Annotated[
        Optional[Path],
        typer.Option(help="raw dataset folder (default: data/, a preset's synth.out or the task file's task.data)"),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
    force: Annotated[bool, typer.Option(help="rerun even if data and params are unchanged")] = False,
    pipeline_root: Annotated[Path, typer.Option(help="where kfp.local keeps task outputs")] = Path(".kfp_local"),
) -> None:
    """Generate data (if absent), track it with DVC, run the pipeline with kfp.local, show the champion.

    Like `dvc repro`, a rerun with the same data version and params does no work: the record of
    the last run (`<pipeline-root>/last_run.json`) must match the registry's champion.
    """
    from lesionops.champion import champion_summary
    from lesionops.datavc import track
    from lesionops.presets import synth_settings

    doc = task_params(params, task, overrides, "demo")
    data = load_task(doc).data
    source = source or Path(data or (synth_settings(doc).out if task else "data"))
    if data is None and not (source.is_dir() and any(source.iterdir())):
        synth(out=source, n_images=n_images, params=params, task=task)
    version = track(source) if source.resolve().is_relative_to(Path.cwd().resolve()) else "untracked"
    console.print(f"data version (DVC md5): {version}")
    tracking = section(doc, "mlflow", TrackingConfig)
    inputs = {"data_version": version, "params_hash": params_hash(doc)}
    record = pipeline_root / "last_run.json"
    last = json.loads(record.read_text()) if record.is_file() else {}
    current = champion_summary(tracking)
    if not force and current and last == {**inputs, "champion": current["version"]}:
        console.print(f"data and params unchanged since champion v{current['version']} was trained (--force to rerun)")
        print_champion(tracking)
        final = current
    else:
        pipeline_run(source=source, params=params, pipeline_root=pipeline_root, task=task, overrides=overrides)
        final = champion_summary(tracking)
        if final is not None and (current is None or final["version"] != current["version"]):
            record.write_text(json.dumps({**inputs, "champion": final["version"]}))  # promoted
    if final is None:
        console.print("[bold red]demo: no model passed the gate[/]; see evaluate_model's decision.json")
        raise typer.Exit(1)
    metrics = final["test_metrics"]
    if "baseline_macro_f1" in metrics:
        console.print(
            f"CNN vs the classic HOG+SVM baseline on the same test split: macro-F1 "
            f"{metrics['test_macro_f1']:.3f} vs {metrics['baseline_macro_f1']:.3f} "
            f"({100 * (metrics['test_macro_f1'] - metrics['baseline_macro_f1']):+.1f} points)"
        )
    print_subgroups(final["run_id"])
    console.print(
        f"\nBrowse runs and the registry:  make ui   (mlflow ui --backend-store-uri "
        f"{tracking.tracking_uri} --default-artifact-root {tracking.artifact_root})"
    )
    console.print(
        "Serve the champion with the clinician page (/), expert review (/review) and API docs (/docs):\n"
        "  .venv/bin/lesionops users add <name> --role clinician   (prints a personal token once)\n"
        "  .venv/bin/lesionops serve   → http://127.0.0.1:8000/"
    )
