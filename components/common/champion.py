"""The model behind `models:/<name>@<alias>`: one way to find it and to load it, for evaluation
(classifier and detector, scored against their challenger), drift monitoring (its reference) and
the CLI's champion table."""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from components.common.tracking import TrackingConfig, resolved_uri, version_by_alias


def champion_version(tracking: TrackingConfig, name: str, alias: str) -> ModelVersion | None:
    """The registry version `alias` points at (None when there is no champion yet); the tracking
    URI is set from params on the way, so a later `models:/` load reads the same store."""
    mlflow.set_tracking_uri(resolved_uri(tracking))
    return version_by_alias(MlflowClient(), name, alias)


def load_champion(tracking: TrackingConfig, name: str, alias: str) -> tuple[Any, ModelVersion | None]:
    """(the torch module in eval mode, its version), or (None, None) when there is no champion yet.

    Models are pickled nn.Modules (serving needs their embeddings); versions logged before that are
    pt2 (torch.export): their graph module is frozen in eval mode and refuses `.eval()`."""
    import torch  # heavy: only when a model is actually loaded

    version = champion_version(tracking, name, alias)
    if version is None:
        return None, None
    loaded = mlflow.pytorch.load_model(f"models:/{name}/{version.version}", map_location="cpu")
    module = loaded.module() if isinstance(loaded, torch.export.ExportedProgram) else loaded
    if not isinstance(module, torch.fx.GraphModule):
        module.eval()
    return module, version
