"""The monitoring pipeline's Kubeflow recurring-run spec: valid API fields, checked parameters."""

from __future__ import annotations

import json
from pathlib import Path

import kfp_server_api
import pytest
from kfp import compiler

from components.common.errors import ConfigError
from pipelines.monitoring import monitoring_pipeline
from pipelines.schedule import recurring_run_spec, trigger


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compiled") / "monitoring.yaml"
    compiler.Compiler().compile(monitoring_pipeline, str(path))
    return path


def _fields(model: type) -> set[str]:
    return set(model.attribute_map)


def test_spec_uses_only_kfp_v2beta1_fields(compiled: Path) -> None:
    store_mode = {
        "params_json": "{}",
        "store_url": "postgresql://monitor@db/lesionops",
        "history_uri": "/mnt/monitor/history.json",
    }  # a window of the serving store
    spec = recurring_run_spec(compiled, store_mode, every_s=3600)
    assert spec["runtime_config"]["parameters"] == store_mode
    assert set(spec) <= _fields(kfp_server_api.V2beta1RecurringRun)
    assert set(spec["trigger"]) <= _fields(kfp_server_api.V2beta1Trigger)
    assert set(spec["trigger"]["periodic_schedule"]) <= _fields(kfp_server_api.V2beta1PeriodicSchedule)
    assert set(spec["runtime_config"]) <= _fields(kfp_server_api.V2beta1RuntimeConfig)
    assert spec["trigger"]["periodic_schedule"]["interval_second"] == "3600"
    assert spec["mode"] == "ENABLE" and spec["no_catchup"] is True and spec["max_concurrency"] == "1"
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "lesionops-monitoring"
    json.dumps(spec)  # the body is plain JSON


def test_cron_trigger_and_bad_schedules(compiled: Path) -> None:
    assert trigger(cron="0 0 * * * *") == {"cron_schedule": {"cron": "0 0 * * * *"}}
    for kwargs, message in (
        ({}, "exactly one"),
        ({"every_s": 60, "cron": "0 * * * *"}, "exactly one"),
        ({"every_s": 10}, "at least 60"),
        ({"cron": "hourly"}, "5 or 6 fields"),
    ):
        with pytest.raises(ConfigError, match=message):
            trigger(**kwargs)


def test_unknown_parameter_and_missing_file_are_named(compiled: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no_such_param"):
        recurring_run_spec(compiled, {"no_such_param": 1}, every_s=3600)
    with pytest.raises(ConfigError, match="pipeline compile"):
        recurring_run_spec(tmp_path / "absent.yaml", {}, every_s=3600)
