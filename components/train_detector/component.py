"""Kubeflow interface of train_detector."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_detector(
    patches: dsl.Input[dsl.Dataset], params_json: str, data_version: str, model: dsl.Output[dsl.Model]
) -> None:
    from components.common.launch import launch

    launch(
        "train_detector",
        ["--patches", patches.path, "--out", model.path, "--data-version", data_version, "--params-json", params_json],
    )
