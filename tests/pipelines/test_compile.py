"""The compiled Kubeflow YAML has what a cluster needs, read from the IR kfp 2.16 writes:

- deploymentSpec.executors.<exec>.container.image: the version-tagged image, `-cuda` for GPU tasks
- deploymentSpec.executors.<exec>.container.resources.{resourceCpuRequest, resourceCpuLimit,
  resourceMemoryRequest, resourceMemoryLimit}: on every task; `.accelerator.{resourceType, resourceCount}`
  on the training tasks
- root.dag.tasks.<t> (and components.comp-condition-N.dag.tasks.<t>).retryPolicy, .cachingOptions
- the gate: root.dag.tasks.condition-N.triggerPolicy.condition on evaluate_*'s `Output`
- monitoring-recurring-run.json: interval, pipeline and parameters
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import __version__
from components.common.params import load_params
from components.common.settings import apply_overrides, load_preset
from pipelines.compile import compile_all
from pipelines.kubeflow import KubeflowConfig
from tests.conftest import REPO

CLASSIFIER_TASKS = {
    "ingest-data",
    "validate-annotations",
    "crop-patches",
    "train-baseline",
    "train-model",
    "evaluate-model",
    "promote-model",
}
DETECTOR_TASKS = {"train-detector", "evaluate-detector", "promote-model-2"}
STAGE_OF = {"promote-model-2": "promote_model"}  # the detector branch's promote_model task
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/lesionops"


def _compile(tmp: Path, doc: dict[str, Any]) -> dict[str, Any]:
    paths = compile_all(tmp, doc, doc["serve"]["store_url"])
    assert [p.name for p in paths] == ["training.yaml", "monitoring.yaml", "monitoring-recurring-run.json"]
    training, *platform = yaml.safe_load_all((tmp / "training.yaml").read_text())
    return {
        "training": training,
        "platform": platform[0]["platforms"]["kubernetes"] if platform else {},
        "monitoring": yaml.safe_load((tmp / "monitoring.yaml").read_text()),
        "schedule": json.loads((tmp / "monitoring-recurring-run.json").read_text()),
        "doc": doc,
    }


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """params.yaml as it is (es_skin classifier)."""
    return _compile(tmp_path_factory.mktemp("classifier"), load_params(REPO / "params.yaml"))


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The es_skin preset (classifier + detector), images from ECR, DDP on 2 GPUs, a pipeline root."""
    doc = apply_overrides(
        load_preset("es_skin", load_params(REPO / "params.yaml")),
        [
            f"kubeflow.image_repository={ECR}",
            "kubeflow.stages.train_model.gpus=2",
            "kubeflow.pipeline_root=s3://lesionops-prod-artifacts/pipeline-root",
        ],
    )
    assert doc["task"]["models"] == ["classifier", "detector"]
    return _compile(tmp_path_factory.mktemp("detector"), doc)


def _tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of the pipeline: the root DAG's and those inside `dsl.If` sub-DAGs."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return {name: t for name, t in tasks.items() if not name.startswith("condition-")}


def _container(spec: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]["container"]


def _stage(task_name: str) -> str:
    return STAGE_OF.get(task_name, task_name.replace("-", "_"))


def test_every_stage_has_its_component_and_the_version_tagged_image(classifier: dict[str, Any]) -> None:
    spec = classifier["training"]
    tasks = _tasks(spec)
    assert set(tasks) == CLASSIFIER_TASKS
    for name, task in tasks.items():
        assert task["componentRef"]["name"] == f"comp-{name}"
        container = _container(spec, task)
        cuda = "-cuda" if name == "train-model" else ""
        assert container["image"] == f"ghcr.io/lesionops/lesionops:{__version__}{cuda}", name
        assert "components.common.launch" in " ".join(container["command"])
        assert "pip install" not in " ".join(container["command"])
    default = spec["root"]["inputDefinitions"]["parameters"]["params_json"]["defaultValue"]
    assert json.loads(default)["task"]["name"] == classifier["doc"]["task"]["name"]


@pytest.mark.parametrize("which", ["classifier", "detector"])
def test_every_task_requests_and_limits_cpu_and_memory_from_params(
    which: str, classifier: dict[str, Any], detector: dict[str, Any]
) -> None:
    compiled = {"classifier": classifier, "detector": detector}[which]
    from components.common.params import section

    cfg = section(compiled["doc"], "kubeflow", KubeflowConfig)
    for spec in (compiled["training"], compiled["monitoring"]):
        for name, task in _tasks(spec).items():
            resources, settings = _container(spec, task)["resources"], cfg.settings(_stage(name))
            assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"]) == (
                settings.cpu_request,
                settings.cpu_limit,
            ), name
            assert (resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == (
                settings.memory_request,
                settings.memory_limit,
            ), name
    train = _container(classifier["training"], _tasks(classifier["training"])["train-model"])["resources"]
    assert train["resourceMemoryLimit"] == "32Gi" and train["resourceCpuRequest"] == "4"


def test_gpus_on_the_training_tasks_only(classifier: dict[str, Any], detector: dict[str, Any]) -> None:
    spec = classifier["training"]
    gpu = {n: _container(spec, t)["resources"].get("accelerator") for n, t in _tasks(spec).items()}
    assert gpu.pop("train-model") == {
        "count": "1",
        "resourceCount": "1",
        "resourceType": "nvidia.com/gpu",
        "type": "nvidia.com/gpu",
    }
    assert not any(gpu.values())
    spec = detector["training"]
    tasks = _tasks(spec)
    assert set(tasks) == CLASSIFIER_TASKS | DETECTOR_TASKS
    assert _container(spec, tasks["train-model"])["resources"]["accelerator"]["resourceCount"] == "2"
    assert _container(spec, tasks["train-detector"])["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert _container(spec, tasks["train-detector"])["resources"]["accelerator"]["resourceCount"] == "1"
    # two GPUs: train_model runs under torchrun with one process per GPU (the pod's program passes it on)
    assert tasks["train-model"]["inputs"]["parameters"]["nproc_per_node"]["runtimeValue"]["constant"] == 2
    assert "nproc_per_node=nproc_per_node" in " ".join(_container(spec, tasks["train-model"])["command"])
    images = {n: _container(spec, t)["image"] for n, t in tasks.items()}
    assert images == {
        n: f"{ECR}:{__version__}{'-cuda' if n in ('train-model', 'train-detector') else ''}" for n in tasks
    }


def test_retries_on_the_flaky_steps_only(detector: dict[str, Any]) -> None:
    tasks = _tasks(detector["training"])
    retries = {n: t["retryPolicy"] for n, t in tasks.items() if "retryPolicy" in t}
    assert {n: r["maxRetryCount"] for n, r in retries.items()} == {
        "ingest-data": 3,
        "train-model": 2,
        "train-detector": 2,
        "promote-model": 3,
        "promote-model-2": 3,
    }
    for policy in retries.values():
        assert (policy["backoffDuration"], policy["backoffFactor"], policy["backoffMaxDuration"]) == (
            "60s",
            2.0,
            "3600s",
        )


def test_caching_on_deterministic_steps_keyed_on_the_data_fingerprint(detector: dict[str, Any]) -> None:
    tasks = _tasks(detector["training"])
    cached = {n for n, t in tasks.items() if t.get("cachingOptions", {}).get("enableCache")}
    assert cached == {
        "ingest-data",
        "validate-annotations",
        "crop-patches",
        "train-baseline",
        "train-model",
        "train-detector",
    }
    assert all("cachingOptions" in t for t in tasks.values())  # an explicit choice everywhere
    monitor = _tasks(detector["monitoring"])["monitor-drift"]
    assert monitor["cachingOptions"] == {}
    # the cache key covers the inputs: ingest_data's include the run's data fingerprint
    assert tasks["ingest-data"]["inputs"]["parameters"]["data_version"] == {"componentInputParameter": "data_version"}


def test_caching_can_be_turned_off(tmp_path: Path) -> None:
    doc = apply_overrides(load_params(REPO / "params.yaml"), ["kubeflow.caching=false"])
    compile_all(tmp_path, doc, doc["serve"]["store_url"])
    tasks = _tasks(next(yaml.safe_load_all((tmp_path / "training.yaml").read_text())))
    assert not any(t["cachingOptions"].get("enableCache") for t in tasks.values())


@pytest.mark.parametrize(
    ("condition", "evaluator", "promote"),
    [("condition-1", "evaluate-model", "promote-model"), ("condition-2", "evaluate-detector", "promote-model-2")],
)
def test_promotion_only_inside_the_gate(detector: dict[str, Any], condition: str, evaluator: str, promote: str) -> None:
    spec = detector["training"]
    gate = spec["root"]["dag"]["tasks"][condition]
    channel = f"pipelinechannel--{evaluator}-Output"
    assert gate["triggerPolicy"]["condition"] == f"inputs.parameter_values['{channel}'] == true"
    assert gate["inputs"]["parameters"][channel]["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": evaluator,
    }
    assert evaluator in gate["dependentTasks"]
    assert list(spec["components"][f"comp-{condition}"]["dag"]["tasks"]) == [promote]
    assert promote not in spec["root"]["dag"]["tasks"]


def test_monitoring_schedule_runs_the_compiled_monitoring_pipeline(
    classifier: dict[str, Any], detector: dict[str, Any]
) -> None:
    schedule, doc = classifier["schedule"], classifier["doc"]
    assert schedule["trigger"]["periodic_schedule"]["interval_second"] == "3600"  # retrain.every: 1h
    assert schedule["pipeline_spec"] == classifier["monitoring"]
    assert schedule["pipeline_spec"]["pipelineInfo"]["name"] == "lesionops-monitoring"
    parameters = schedule["runtime_config"]["parameters"]
    assert parameters["store_url"] == doc["serve"]["store_url"]
    assert parameters["history_uri"] == f"{doc['retrain']['monitor_dir']}/history.json"
    assert "pipeline_root" not in schedule["runtime_config"]  # unset: the cluster's default
    assert detector["schedule"]["runtime_config"]["pipeline_root"] == "s3://lesionops-prod-artifacts/pipeline-root"
    assert (schedule["mode"], schedule["no_catchup"], schedule["max_concurrency"]) == ("ENABLE", True, "1")


def _executor_of(spec: dict[str, Any], task: str) -> str:
    return spec["components"][_tasks(spec)[task]["componentRef"]["name"]]["executorLabel"]


def test_gpu_pods_tolerate_the_gpu_taint_and_get_shared_memory(detector: dict[str, Any]) -> None:
    """GPU node groups carry `nvidia.com/gpu:NoSchedule` (infra/terraform): without the toleration
    a training pod waits forever; without a memory-backed /dev/shm DataLoader workers die."""
    executors = detector["platform"]["deploymentSpec"]["executors"]
    gpu = {_executor_of(detector["training"], t) for t in ("train-model", "train-detector")}
    assert set(executors) == gpu  # CPU tasks carry no platform config at all
    for name in gpu:
        assert executors[name]["tolerations"] == [
            {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
        ]
        assert executors[name]["emptyDirMounts"] == [
            {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "8Gi", "volumeName": "dshm"}
        ]


def test_gpu_toleration_can_be_turned_off_and_cpu_training_has_none(tmp_path: Path) -> None:
    doc = apply_overrides(load_params(REPO / "params.yaml"), ["kubeflow.gpu_toleration=false"])
    compiled = _compile(tmp_path / "a", doc)
    (executor,) = compiled["platform"]["deploymentSpec"]["executors"].values()
    assert "tolerations" not in executor and executor["emptyDirMounts"][0]["mountPath"] == "/dev/shm"
    cpu_only = apply_overrides(load_params(REPO / "params.yaml"), ["kubeflow.stages.train_model.gpus=0"])
    assert _compile(tmp_path / "b", cpu_only)["platform"] == {}


def _artifact_outputs(spec: dict[str, Any], component: str) -> dict[str, str]:
    outputs = spec["components"][component].get("outputDefinitions", {}).get("artifacts", {})
    return {name: a["artifactType"]["schemaTitle"] for name, a in outputs.items()}


def test_the_kfp_ui_gets_metrics_confusion_matrix_reports_and_the_model_card(detector: dict[str, Any]) -> None:
    """What a run shows in the Kubeflow UI: metrics, the confusion matrix + ROC, the validation and
    drift reports as HTML, the model card as Markdown (each component copies the stage's own file)."""
    spec, monitoring = detector["training"], detector["monitoring"]
    evaluate = _artifact_outputs(spec, "comp-evaluate-model")
    assert (evaluate["metrics"], evaluate["classification"]) == ("system.Metrics", "system.ClassificationMetrics")
    assert _artifact_outputs(spec, "comp-evaluate-detector")["metrics"] == "system.Metrics"
    assert _artifact_outputs(spec, "comp-validate-annotations")["report"] == "system.HTML"
    assert _artifact_outputs(spec, "comp-promote-model")["model_card"] == "system.Markdown"
    assert _artifact_outputs(monitoring, "comp-monitor-drift")["drift_report"] == "system.HTML"
    program = " ".join(
        _container(spec, _tasks(spec)["evaluate-model"])["args"]
        + _container(spec, _tasks(spec)["evaluate-model"])["command"]
    )
    assert "log_classification(classification" in program and "log_metrics(metrics" in program
