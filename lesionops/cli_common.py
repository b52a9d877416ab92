"""What the `lesionops` commands share: the console, the --params/--task/--set options, and the
params document they build, the synthetic-data generator, the champion table and its subgroups."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from components.common.cli import error_line
from components.common.errors import LesionOpsError
from components.common.params import section
from components.common.settings import build_settings
from components.common.task import load_task
from components.common.tracking import TrackingConfig

console = Console()


ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to use")]
TaskOpt = Annotated[
    Optional[str],
    typer.Option(
        "--task",
        help="a task preset (es_skin, acupoint, chest_xray, ct_pneumonia, monkeypox) or your own task "
        "file (FILE.yaml, see `lesionops task new`) merged over --params",
    ),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", help="SECTION.KEY=VALUE (YAML value) applied after the preset, e.g. train_model.epochs=2; repeatable"
    ),
]


class Commands(typer.Typer):
    """A Typer app whose every command runs under the one error path: our typed errors (a bad
    setting, an unreachable bucket, a failed DVC call, a failed gate, a refused promotion) end the
    command with one red line naming it and the error's exit code (2, 3 or 4), never a traceback."""

    def __init__(self, *, prefix: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(name, **kwargs)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            label = " ".join(p for p in (self.prefix, name or fn.__name__.replace("_", "-")) if p)

            @functools.wraps(fn)
            def guarded(*args: Any, **kw: Any) -> Any:
                try:
                    return fn(*args, **kw)
                except LesionOpsError as exc:
                    console.print(f"[bold red]{error_line(exc, label)}[/]", markup=True, highlight=False)
                    raise typer.Exit(exc.exit_code) from None

            register(guarded)
            return fn

        return decorator


def task_params(params: Path, task: str | None, overrides: list[str] | None, command: str) -> dict[str, Any]:
    """params.yaml, then the task (preset or file), then `--set` overrides (a bad one is a ConfigError)."""
    from lesionops.presets import synth_settings

    doc = build_settings(params, task, overrides)
    synth_settings(doc)
    return doc


def generate_data(doc: dict[str, Any], out: Path, **overrides: Any) -> None:
    """Run the generator the document's `synth` section names (skin unless a preset says otherwise)."""
    from dataclasses import replace

    from lesionops.presets import generate, synth_settings

    settings = replace(synth_settings(doc), **{k: v for k, v in overrides.items() if v is not None})
    done = generate(settings, load_task(doc).classes, out)
    what = f"{done.n_boxes} boxes" if done.n_boxes else "one label per image"
    console.print(
        f"synth ({done.generator}): {done.n_images} images, {what}, {done.n_patients} patients "
        f"→ {out}  {done.per_class}"
    )


def print_champion(tracking: TrackingConfig) -> dict[str, Any] | None:
    from lesionops.champion import champion_summary

    summary = champion_summary(tracking)
    if summary is None:
        console.print("[bold red]No champion model in the registry (the gate has never passed).[/]")
        return None
    table = Table(
        title=f"Champion: {summary['name']} v{summary['version']} "
        f"(aliases {', '.join(summary['aliases'])}; run {summary['run_id']})"
    )
    table.add_column("test metric")
    table.add_column("value", justify="right")
    for key, value in summary["test_metrics"].items():
        table.add_row(key, f"{value:.4f}")
    console.print(table)
    return summary


def print_subgroups(run_id: str) -> None:
    """The champion's model card section with metrics per skin tone and body site (CIs, sizes)."""
    from lesionops.champion import CARD_ARTIFACT, card_section, champion_card

    card = champion_card(run_id)
    part = None if card is None else card_section(card, "Subgroups")
    if part is None:
        console.print(f"No subgroup table: run {run_id} has no model card with one ({CARD_ARTIFACT}).")
        return
    console.print(Markdown(part))
    console.print(f"Full model card: MLflow artifact {CARD_ARTIFACT} of run {run_id}")


def print_champions(doc: dict[str, Any]) -> bool:
    """The champion of each model the task trains (a detector-only task has no classifier);
    False when one of them has none yet."""
    from dataclasses import replace

    tracking = section(doc, "mlflow", TrackingConfig)
    models = load_task(doc).models
    found = []
    if "classifier" in models:
        found.append(print_champion(tracking))
    if "detector" in models:
        found.append(print_champion(replace(tracking, registered_model=tracking.registered_detector)))
    return all(f is not None for f in found)
