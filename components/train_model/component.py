"""Kubeflow interface of train_model."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_model(
    patches: dsl.Input[dsl.Dataset],
    params_json: str,
    data_version: str,
    model: dsl.Output[dsl.Model],
    nproc_per_node: int = 1,
) -> None:
    """`nproc_per_node` > 1 (the task's GPU count, pipelines/kubeflow.py) trains with DDP under
    torchrun, one process per GPU of this pod; the same `components.train_model` module."""
    from components.common.launch import launch

    launch(
        "train_model",
        ["--patches", patches.path, "--out", model.path, "--data-version", data_version, "--params-json", params_json],
        nproc_per_node=nproc_per_node,
    )
