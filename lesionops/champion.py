"""What the registry says about the current champion: name, version, run, test metrics, model card."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.common.champion import champion_version
from components.common.tracking import TrackingConfig
from components.promote_model.core import ARTIFACT_DIR, CARD

CARD_ARTIFACT = f"{ARTIFACT_DIR}/{CARD}"  # promote_model logs the card to the version's run

# How far the CNN is above seed 002's HOG+SVM floor, on the same test split (evaluate_model logs them).
BASELINE_KEYS = ("baseline_macro_f1", "gain_vs_baseline")


def champion_summary(tracking: TrackingConfig, alias: str = "champion") -> dict[str, Any] | None:
    """The version behind `models:/<name>@<alias>` with its run's test metrics, or None."""
    version = champion_version(tracking, tracking.registered_model, alias)
    if version is None:
        return None
    metrics = MlflowClient().get_run(version.run_id).data.metrics if version.run_id else {}
    return {
        "name": tracking.registered_model,
        "version": str(version.version),
        "alias": alias,
        "run_id": version.run_id,
        "aliases": list(version.aliases),
        "test_metrics": {k: v for k, v in sorted(metrics.items()) if k.startswith("test_") or k in BASELINE_KEYS},
        "tags": dict(version.tags),
    }


def champion_card(run_id: str) -> str | None:
    """The model card promote_model logged to the champion's run; None when it logged none."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(MlflowClient().download_artifacts(run_id, CARD_ARTIFACT, tmp)).read_text(encoding="utf-8")
    except (MlflowException, OSError):
        return None


def card_section(card: str, title: str) -> str | None:
    """The `## title` section of a Markdown card, heading included, up to the next `## ` heading."""
    lines = card.splitlines()
    try:
        start = lines.index(f"## {title}")
    except ValueError:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip()
