import pytest

from pipelines.local import cel_to_python, portable_params


@pytest.mark.parametrize(
    ("cel", "python"),
    [
        (
            "inputs.parameter_values['pipelinechannel--evaluate-model-Output'] == true",
            "pipelinechannel--evaluate-model-Output == True",
        ),
        ("inputs.parameter_values['pipelinechannel--a-Output'] == false", "pipelinechannel--a-Output == False"),
    ],
)
def test_compiled_conditions_become_python(cel: str, python: str) -> None:
    assert cel_to_python(cel) == python


def test_portable_params_pins_relative_mlflow_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    doc = portable_params({"mlflow": {"tracking_uri": "sqlite:///mlruns/mlflow.db", "artifact_root": "mlruns/a"}})
    assert doc["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert doc["mlflow"]["artifact_root"] == f"{tmp_path}/mlruns/a"
    remote = {"mlflow": {"tracking_uri": "http://mlflow:5000", "artifact_root": "s3://b/a"}}
    assert portable_params(remote) == remote
