"""`lesionops task …`: turn a folder of real labelImg annotations into a task file `--task` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from components.common.errors import ConfigError
from lesionops.cli_common import Commands, ParamsOpt, console

task_app = Commands(
    prefix="task", help="Task files for your own datasets (`--task FILE.yaml` in every command).", no_args_is_help=True
)


@task_app.command("new")
def task_new(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="dataset: a folder, a .zip or s3://bucket/prefix of images "
            "with labelImg VOC, YOLO, CreateML or class folders",
        ),
    ],
    out: Annotated[Path, typer.Option(help="task file to write (FILE.yaml)")],
    name: Annotated[
        Optional[str], typer.Option(help="task name (default: the folder's name); registry names follow it")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing task file")] = False,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Scan a labelImg folder and write a commented task file: the labels exactly as typed with box
    and image counts, spelling variants grouped as aliases, and proposed sample, models, patch size
    and patient pattern. Then: `lesionops pipeline run --task FILE.yaml`."""
    from components.common.params import load_params
    from components.common.task import load_task
    from lesionops.task_new import new_task

    if out.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(f"--out {out}: a task file must end in .yaml or .yml")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    found, doc = new_task(source, out, load_params(params), name)
    table = Table(title=f"{found.n_images} images in {found.source} ({found.layout})")
    for column in ("label as typed", "boxes", "images", "class"):
        table.add_column(column, justify="left" if column in ("label as typed", "class") else "right")
    task, taxonomy = doc["task"], load_task(doc)
    for c in found.labels:
        table.add_row(repr(c.typed), str(c.boxes), str(c.images), taxonomy.normalize(c.typed) or "(not a class)")
    console.print(table)
    console.print(
        f"classes {task['classes']}, models {task['models']}, sample {task['sample']}, "
        f"patch {doc['crop_patches']['patch_size']} px, patient pattern "
        f"{doc['ingest_data']['patient_pattern'] or 'none (each image its own group)'}"
    )
    console.print(f"wrote {out}\nnext: lesionops pipeline run --task {out}")
