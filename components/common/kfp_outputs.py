"""What a Kubeflow run shows in its UI: a stage's own output files turned into KFP output artifacts.

Components stay thin readers: the stage (core.py) writes metrics.json, roc.csv, the HTML reports
and the model card wherever it runs (dvc repro, a CLI, a pod); the component then hands them to
kfp as `Metrics` (scalars in the run's metric table and compare view), `ClassificationMetrics`
(confusion matrix, ROC), `HTML` and `Markdown` (rendered in the artifact pane). Each artifact's
file is written too, so kfp.local leaves them on disk under its pipeline root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from components.common.io import read_json
from components.common.plot_data import ROC_CSV, read_csv


def _target(artifact: Any) -> Path:
    path = Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def scalars(doc: dict[str, Any]) -> dict[str, float]:
    """The top-level numbers of a metrics document (booleans, strings, None and nested blocks
    left out: the KFP metric table takes scalars only)."""
    return {
        key: float(value)
        for key, value in doc.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value
    }


def log_metrics(artifact: Any, metrics_file: Path) -> dict[str, float]:
    """Every scalar of `metrics_file` (a stage's metrics.json) as a KFP metric; a skipped stage
    logs its reason as the artifact's only metadata."""
    doc = read_json(metrics_file)
    numbers = scalars(doc)
    for key, value in sorted(numbers.items()):
        artifact.log_metric(key, value)
    if doc.get("skipped"):
        artifact.metadata["skipped"] = str(doc["skipped"])
    _target(artifact).write_text(json.dumps(numbers, indent=2, sort_keys=True), encoding="utf-8")
    return numbers


def log_classification(artifact: Any, out_dir: Path) -> bool:
    """The confusion matrix (metrics.json) and the micro-averaged ROC (roc.csv) of an evaluation
    folder; False (nothing logged) when the stage was skipped."""
    doc = read_json(out_dir / "metrics.json")
    if doc.get("skipped") or "confusion_matrix" not in doc:
        artifact.metadata["skipped"] = str(doc.get("skipped", "no confusion matrix"))
        _target(artifact).write_text(json.dumps(artifact.metadata, indent=2), encoding="utf-8")
        return False
    artifact.log_confusion_matrix(list(doc["per_class"]), doc["confusion_matrix"])
    roc = read_csv(out_dir / ROC_CSV)
    if roc:
        artifact.log_roc_curve(
            [float(r["fpr"]) for r in roc], [float(r["tpr"]) for r in roc], [float(r["threshold"]) for r in roc]
        )
    _target(artifact).write_text(json.dumps(artifact.metadata, indent=2), encoding="utf-8")
    return True


def publish_file(artifact: Any, source: Path, missing: str) -> bool:
    """Copy `source` (an HTML report, a Markdown card) to the artifact's path, or write `missing`
    there when the stage produced none (skipped, refused): the UI then says why."""
    if source.is_file():
        shutil.copyfile(source, _target(artifact))
        return True
    _target(artifact).write_text(missing, encoding="utf-8")
    return False
