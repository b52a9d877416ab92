"""Run the training pipeline on this machine with `kfp.local` (each task a local subprocess)."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import IO, Any

# Compiled conditions read `inputs.parameter_values['pipelinechannel--x'] == true` (CEL).
_CEL_PARAM = re.compile(r"inputs\.parameter_values\['(pipelinechannel--[^']+)'\]")


def portable_params(params: dict[str, Any]) -> dict[str, Any]:
    """Pin relative MLflow locations to absolute ones so every task subprocess sees the same store."""
    from components.common.tracking import absolute_root, absolute_sqlite

    doc = json.loads(json.dumps(params))
    ml = doc.setdefault("mlflow", {})
    if ml.get("tracking_uri"):
        ml["tracking_uri"] = absolute_sqlite(ml["tracking_uri"])
    if ml.get("artifact_root"):
        ml["artifact_root"] = absolute_root(ml["artifact_root"])
    promote = doc.get("promote_model") or {}
    if promote.get("audit_log"):  # one audit log (and its lock) for every promotion task
        promote["audit_log"] = absolute_root(promote["audit_log"])
    return doc


# CEL tokens, and the Python ones they become (a translated condition passes through unchanged:
# kfp.local may hand an already translated condition back to the evaluator).
_CEL_TOKEN = re.compile(
    r"\s*(pipelinechannel--[A-Za-z0-9_\-]+|==|!=|&&|\|\||!|\(|\)|true|false|-?\d+(?:\.\d+)?|'[^']*'"
    r"|(?:not|and|or|True|False)\b)"
)
_CEL_TO_PYTHON = {"true": "True", "false": "False", "&&": "and", "||": "or", "!": "not"}


def cel_to_python(condition: str) -> str:
    """The CEL of a compiled `dsl.If`/`Elif`/`Else` (`inputs.parameter_values['pipelinechannel--t-Output']
    == true`, `!(…) && …`) as the Python kfp.local evaluates; anything else is refused loudly, because
    kfp.local would log a warning and silently skip the gated task. Idempotent."""
    expr = _CEL_PARAM.sub(r"\1", condition).strip()
    tokens, pos = [], 0
    while pos < len(expr):
        match = _CEL_TOKEN.match(expr, pos)
        if match is None:
            raise RuntimeError(
                f"kfp.local shim: cannot translate the condition {condition!r} at {expr[pos:]!r}; "
                "extend pipelines/local.py's CEL translation instead of letting kfp.local skip the task"
            )
        tokens.append(_CEL_TO_PYTHON.get(match.group(1), match.group(1)))
        pos = match.end()
    return " ".join(tokens)


def _fix_kfp_local_conditions() -> None:
    """kfp.local 2.16 evaluates compiled `dsl.If` conditions with Python `eval` but does not
    translate their CEL form, so every condition reads False and gated tasks never run. Translate
    first; the channel lookup and evaluation stay kfp's own."""
    from kfp.local.orchestrator import enhanced_dag_orchestrator as orchestrator

    original = orchestrator.ConditionEvaluator.evaluate_condition
    if getattr(original, "__lesionops_cel__", False):
        return

    def evaluate_condition(condition: str, io_store: Any) -> bool:
        return original(cel_to_python(condition), io_store)

    evaluate_condition.__lesionops_cel__ = True  # type: ignore[attr-defined]
    evaluate_condition.__wrapped__ = original  # type: ignore[attr-defined]  # kfp's own, for the test that it still needs this
    orchestrator.ConditionEvaluator.evaluate_condition = staticmethod(evaluate_condition)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_STARTED = re.compile(r"Executing task '([^']+)'")
_TASK_ENDED = re.compile(r"Task '([^']+)' finished with status (\w+)")


class StageEcho:
    """kfp.local's output goes to the task log; this stream writes it there and tells `echo` (the
    terminal) one line per task as it finishes, with its status and seconds, so a long run shows
    where it is instead of staying silent until the end."""

    def __init__(self, log: IO[str], echo: IO[str], clock: Any = time.monotonic) -> None:
        self.log, self.echo, self.clock = log, echo, clock
        self.pending = ""
        self.started: dict[str, float] = {}

    def write(self, text: str) -> int:
        self.log.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._line(_ANSI.sub("", line))
        return len(text)

    def _line(self, line: str) -> None:
        if started := _TASK_STARTED.search(line):
            self.started[started.group(1)] = self.clock()
        elif ended := _TASK_ENDED.search(line):
            name, status = ended.groups()
            now = self.clock()
            self.echo.write(f"  {name}: {status} ({now - self.started.get(name, now):.0f} s)\n")
            self.echo.flush()

    def flush(self) -> None:
        self.log.flush()


def run_training(
    source: Path | str, params: dict[str, Any], pipeline_root: Path, data_version: str, log_path: Path | None = None
) -> None:
    """Execute `training_pipeline` with kfp.local's SubprocessRunner (offline, no venv per task).

    A `kubeflow.stages.train_model.gpus` above 1 runs train_model under torchrun here too.

    kfp.local prints every task's full executor input; with `log_path` that goes to a file and the
    terminal gets one line per finished task (`StageEcho`).
    """
    from kfp import local

    from components.common.params import section
    from components.common.task import TaskConfig
    from components.crossval.config import CrossvalConfig
    from pipelines.kubeflow import from_params
    from pipelines.training import build_training_pipeline

    _fix_kfp_local_conditions()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root.resolve()), raise_on_error=True
    )
    with contextlib.ExitStack() as stack:
        if log_path is not None:
            log = StageEcho(stack.enter_context(log_path.open("w", encoding="utf-8")), sys.stdout)
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
        warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom")
        # the same tasks as on a cluster; kfp.local ignores image, resources, GPUs, retries, caching
        training_pipeline = build_training_pipeline(
            section(params, "task", TaskConfig).models,
            from_params(params),
            section(params, "crossval", CrossvalConfig).enabled,
        )
        uri = source if str(source).startswith("s3://") else str(Path(source).resolve())  # ingest stages S3 itself
        training_pipeline(source_uri=uri, params_json=json.dumps(portable_params(params)), data_version=data_version)
