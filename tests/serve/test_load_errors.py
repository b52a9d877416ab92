"""A registry version serving cannot use is reported with its reason, never a crash at start."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from lesionops.serve.models import LoadError, _load_module


def test_exported_program_is_refused_with_a_reason(tmp_path: Path) -> None:
    """Versions logged as torch.export programs (before train_model logged pickled modules) have no
    layer to take embeddings from: a LoadError naming the version, not NotImplementedError from .eval()."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    exp = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    example = torch.zeros(1, 3, 2, 2)
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.pytorch.log_model(
            model, name="model", input_example=example.numpy(), serialization_format="pt2", registered_model_name="old"
        )
    assert info.registered_model_version == 1
    with pytest.raises(LoadError, match="torch.export program"):
        _load_module(client, uri, "old", "1")


def test_evaluate_model_still_scores_a_pt2_champion(tmp_path: Path) -> None:
    """A registry whose champion predates pickled logging (pt2) must not break the next evaluation:
    the challenger is compared with it as before (its graph refuses `.eval()`; it is frozen in eval)."""
    from components.common.preprocessing import IMAGENET
    from components.common.tracking import TrackingConfig
    from components.evaluate_model.core import champion_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    with mlflow.start_run(experiment_id=exp):
        mlflow.pytorch.log_model(
            model,
            name="model",
            input_example=torch.zeros(2, 3, 2, 2).numpy(),
            serialization_format="pt2",
            registered_model_name="old",
        )
    client.set_registered_model_alias("old", "champion", "1")
    tracking = TrackingConfig(tracking_uri=uri, artifact_root=str(tmp_path / "artifacts"), registered_model="old")
    champion = champion_model(tracking, "champion")
    assert champion is not None and champion.version == "1"
    assert champion.image_size is None and champion.norm == IMAGENET  # no preprocessing.json: what it was fed
    x = torch.rand(4, 3, 2, 2)
    assert torch.allclose(champion.model(x), model(x), atol=1e-6)
