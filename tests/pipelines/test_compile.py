"""The compiled Kubeflow YAML has the structure a cluster needs: components, image, gate, params."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from components import __version__
from components.common.params import load_params
from pipelines.compile import compile_all
from tests.conftest import REPO

STAGES = ["ingest-data", "validate-annotations", "crop-patches", "train-model", "evaluate-model",
          "promote-model"]


def test_training_pipeline_compiles_with_gate_and_versioned_image(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml")
    paths = compile_all(tmp_path, params)
    assert [p.name for p in paths] == ["training.yaml", "monitoring.yaml", "monitoring-recurring-run.json"]
    schedule = json.loads((tmp_path / "monitoring-recurring-run.json").read_text())
    assert schedule["trigger"]["periodic_schedule"]["interval_second"] == "3600"  # retrain.every: 1h
    assert schedule["runtime_config"]["parameters"]["store_url"] == params["serve"]["store_url"]
    spec = yaml.safe_load((tmp_path / "training.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(STAGES) - {"promote-model"} <= set(tasks)
    gate = tasks["condition-1"]
    assert gate["triggerPolicy"]["condition"].endswith("== true")
    assert "evaluate-model" in gate["dependentTasks"]
    sub = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert list(sub) == ["promote-model"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"ghcr.io/lesionops/lesionops:{__version__}"}
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "components.common.launch" in " ".join(executor["container"]["command"])
        assert "pip install" not in " ".join(executor["container"]["command"])
    default = spec["root"]["inputDefinitions"]["parameters"]["params_json"]["defaultValue"]
    assert json.loads(default)["task"]["name"] == params["task"]["name"]
