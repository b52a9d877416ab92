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


def _store(**outputs: object) -> object:
    from kfp.local import io

    store = io.IOStore()
    for task, value in outputs.items():
        store.put_task_output(task.replace("_", "-"), "Output", value)
    return store


ELSE = (
    "!(inputs.parameter_values['pipelinechannel--evaluate-model-Output'] == true) && "
    "inputs.parameter_values['pipelinechannel--evaluate-detector-Output'] == false"
)


@pytest.mark.parametrize(
    ("model", "detector", "expected"), [(False, False, True), (True, False, False), (False, True, False)]
)
def test_elif_and_else_conditions_evaluate_through_kfps_own_evaluator(
    model: bool, detector: bool, expected: bool
) -> None:
    from kfp.local.orchestrator.enhanced_dag_orchestrator import ConditionEvaluator

    store = _store(evaluate_model=model, evaluate_detector=detector)
    assert ConditionEvaluator.evaluate_condition(cel_to_python(ELSE), store) is expected
    assert cel_to_python(cel_to_python(ELSE)) == cel_to_python(ELSE)  # kfp.local may translate twice


def test_an_untranslatable_condition_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="cannot translate the condition .* at 'size"):
        cel_to_python("size(inputs.parameter_values['pipelinechannel--t-Output']) > 0")


def test_kfp_local_still_needs_the_translation() -> None:
    """kfp.local (2.16) evaluates CEL as Python: `true` is an unknown name, so the gate reads False.
    When this test fails, kfp does it itself: remove pipelines/local.py's shim."""
    from kfp.local.orchestrator.enhanced_dag_orchestrator import ConditionEvaluator

    cel = "inputs.parameter_values['pipelinechannel--evaluate-model-Output'] == true"
    evaluate = getattr(ConditionEvaluator.evaluate_condition, "__wrapped__", ConditionEvaluator.evaluate_condition)
    assert evaluate(cel, _store(evaluate_model=True)) is False


def test_the_terminal_gets_a_line_per_finished_task_and_the_log_everything() -> None:
    """kfp.local's own log lines (with its colour codes), split across writes as a stream may."""
    import io

    from pipelines.local import StageEcho

    log, echo, ticks = io.StringIO(), io.StringIO(), iter([10.0, 13.4, 20.0, 31.0])
    stream = StageEcho(log, echo, clock=lambda: next(ticks))
    text = (
        "06:15:12.006 - INFO - Executing task \x1b[96m'ingest-data'\x1b[0m\n{executor input}\n"
        "06:15:15.402 - INFO - Task \x1b[96m'ingest-data'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n"
        "06:15:15.404 - INFO - Executing task \x1b[96m'train-model'\x1b[0m\n"
        "06:18:36.233 - INFO - Task \x1b[96m'train-model'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m\n"
    )
    for start in range(0, len(text), 37):
        stream.write(text[start : start + 37])
    assert log.getvalue() == text
    assert echo.getvalue() == "  ingest-data: SUCCESS (3 s)\n  train-model: FAILURE (11 s)\n"
