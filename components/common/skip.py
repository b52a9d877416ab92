"""A stage whose model the task does not train records that it was skipped, and why.

`dvc.yaml` has every stage (classifier and detector branches, crossval, the monitor) so that
`dvc repro` runs the same graph as the Kubeflow pipeline; the pipeline leaves a branch out when
`task.models` lacks it, and DVC runs the stage, which writes `{"skipped": reason}` where its
downstream stage looks first. Nothing downstream of a skipped stage trains or promotes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.common.io import read_json, write_json
from components.common.task import TaskConfig


def not_trained(task: TaskConfig, kind: str) -> str | None:
    """Why a stage of model `kind` (classifier | detector) does not apply to `task`, or None."""
    return None if kind in task.models else f"task.models is {list(task.models)}: no {kind} to train"


def write_skipped(path: Path, reason: str, **extra: Any) -> dict[str, Any]:
    """Write `{"skipped": reason, **extra}` to `path` (the stage's main JSON output) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"skipped": reason, **extra}
    write_json(path, doc)
    return doc


def skipped(path: Path) -> str | None:
    """The reason an upstream stage recorded in `path`, or None when it ran (or wrote nothing)."""
    if not path.is_file():
        return None
    doc = read_json(path)
    return str(doc["skipped"]) if isinstance(doc, dict) and doc.get("skipped") else None


def write_skipped_figure(path: Path, reason: str) -> Path:
    """A small PNG that says why the plot is absent: DVC requires every declared output to exist,
    and a person opening the plot learns the reason instead of finding nothing."""
    from components.common.plots import pyplot, save

    fig, ax = pyplot().subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"skipped: {reason}", ha="center", va="center", wrap=True, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)
