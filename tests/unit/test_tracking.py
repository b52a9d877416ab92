from pathlib import Path

import pytest

from components.common.errors import ConfigError
from components.common.tracking import TrackingConfig, resolved_uri


def test_params_win_over_the_variable_mlflow_itself_sets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////somewhere/else.db")
    uri = resolved_uri(TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/m.db"))
    assert uri == f"sqlite:///{tmp_path}/m.db"


def test_null_uri_uses_the_standard_variable(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert resolved_uri(TrackingConfig(tracking_uri=None)) == "http://mlflow.internal:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        resolved_uri(TrackingConfig(tracking_uri=None))


def test_relative_sqlite_path_is_made_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolved_uri(TrackingConfig()) == f"sqlite:///{tmp_path}/mlruns/mlflow.db"


@pytest.mark.parametrize(
    "name",
    [
        "test_recall_Living Cell",
        "test_recall_Dead Cell (old)",
        "recall_a/b:c",
        "test_ap50_Heltec_ESP32_Lora",
        "recall_ünïcode",
        "x?*",
    ],
)
def test_metric_keys_pass_mlflows_own_check(name: str) -> None:
    from mlflow.utils.validation import _validate_metric_name

    from components.common.tracking import metric_key

    _validate_metric_name(metric_key(name))
    assert metric_key("test_recall_Living Cell") == "test_recall_Living Cell"


def test_logged_models_require_the_installed_torch_and_torchvision() -> None:
    from importlib.metadata import version

    from components.common.tracking import torch_requirements

    assert torch_requirements() == [
        f"torch=={version('torch').split('+')[0]}",
        f"torchvision=={version('torchvision').split('+')[0]}",
    ]


def test_the_logged_baseline_requires_the_installed_scikit_learn_and_skops() -> None:
    from importlib.metadata import version

    from components.common.tracking import sklearn_requirements

    assert sklearn_requirements() == [f"scikit-learn=={version('scikit-learn')}", f"skops=={version('skops')}"]
