"""params.yaml `kubeflow`: merging per-stage settings, refusing what a cluster would refuse, and the
torchrun launcher the train_model component uses for several GPUs."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from components.common.errors import ConfigError
from components.common.kfp_image import image
from components.common.launch import command, launch
from components.common.params import build
from pipelines.kubeflow import KubeflowConfig, from_params


def _cfg(**values: Any) -> KubeflowConfig:
    return build(KubeflowConfig, values, "kubeflow")


def test_stage_overrides_merge_over_defaults() -> None:
    cfg = _cfg(stages={"train_model": {"gpus": 4, "memory_limit": "64Gi", "memory_request": "32Gi"}})
    train = cfg.settings("train_model")
    assert (train.gpus, train.memory_limit, train.cpu_request) == (4, "64Gi", cfg.defaults.cpu_request)
    assert cfg.nproc_per_node("train_model") == 4 and cfg.nproc_per_node("ingest_data") == 1
    assert cfg.image_for("train_model") == image(cuda=True) and cfg.image_for("crop_patches") == image()
    assert _cfg().nproc_per_node("train_model") == 1  # no GPU: one CPU process


def test_a_document_without_the_section_gets_the_defaults() -> None:
    assert from_params({"task": {}}) == KubeflowConfig()
    with pytest.raises(ConfigError, match="unknown key"):
        from_params({"kubeflow": {"gpu": 1}})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"stages": {"train_modle": {"gpus": 1}}}, r"unknown stage\(s\) \['train_modle'\]"),
        ({"stages": {"crop_patches": {"cpu_request": "8", "cpu_limit": "4"}}}, "cpu_request 8 is above cpu_limit 4"),
        ({"stages": {"ingest_data": {"memory_limit": "lots"}}}, r"ingest_data.memory_limit: not a Kubernetes quantity"),
        ({"stages": {"train_detector": {"gpus": 2}}}, "train_detector trains in one process"),
        ({"stages": {"promote_model": {"retries": -1}}}, "must be >= 0"),
        ({"stages": {"ingest_data": {"cpu_request": 1}}}, "expected str"),  # YAML 1 is an int: quote it
        ({"defaults": {"cpu_request": "1"}}, "every key needs a value"),
        ({"image_repository": "ghcr.io/lesionops/lesionops:latest"}, "without tag or digest"),
        ({"retry_backoff": "soon"}, "a duration like 30s"),
        ({"pipeline_root": "/mnt/pipeline-root"}, "a URI the cluster can reach"),
        ({"pytorchjob": {"nodes": 0}}, "nodes: at least 1"),
    ],
)
def test_settings_a_cluster_would_refuse_are_refused_at_load(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(**values)


def test_configure_sets_everything_on_a_task() -> None:
    from pipelines.training import build_training_pipeline

    cfg = _cfg(
        image_repository="registry.example.com:5000/team/lesionops",
        retry_backoff="2m",
        stages={"train_model": {"gpus": 2, "retries": 1}},
    )
    spec = build_training_pipeline(("classifier",), cfg).pipeline_spec
    task = spec.root.dag.tasks["train-model"]
    container = spec.deployment_spec["executors"]["exec-train-model"]["container"]
    assert container["image"] == image("registry.example.com:5000/team/lesionops", cuda=True)
    assert container["resources"]["accelerator"]["resourceCount"] == "2"
    assert task.retry_policy.max_retry_count == 1 and task.retry_policy.backoff_duration.seconds == 120
    assert task.caching_options.enable_cache is True
    assert task.inputs.parameters["nproc_per_node"].runtime_value.constant.number_value == 2


@pytest.mark.parametrize(
    ("nproc", "head"),
    [
        (1, [sys.executable, "-m", "components.train_model"]),
        (
            4,
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nnodes",
                "1",
                "--nproc-per-node",
                "4",
                "-m",
                "components.train_model",
            ],
        ),
    ],
)
def test_launch_command_uses_torchrun_for_several_processes(nproc: int, head: list[str]) -> None:
    assert command("train_model", ["--out", "o"], nproc) == [*head, "--out", "o"]
    with pytest.raises(ValueError, match="at least 1"):
        command("train_model", [], 0)


@pytest.mark.slow
def test_torchrun_launch_starts_one_stage_process_per_gpu(capfd: pytest.CaptureFixture[str]) -> None:
    """Two processes on this CPU, each the real `components.train_model` entry point."""
    launch("train_model", ["--help"], nproc_per_node=2)
    out = capfd.readouterr().out
    assert out.count("usage: ") == 2 and "torch.distributed.run --standalone" in out


def test_a_failing_stage_fails_the_task() -> None:
    with pytest.raises(RuntimeError, match="stage no_such_stage failed"):
        launch("no_such_stage", [])
