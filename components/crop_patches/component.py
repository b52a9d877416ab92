"""Kubeflow interface of crop_patches."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def crop_patches(
    accepted: dsl.Input[dsl.Dataset], source_uri: str, params_json: str, patches: dsl.Output[dsl.Dataset]
) -> None:
    from components.common.launch import launch

    launch(
        "crop_patches",
        ["--accepted", accepted.path, "--source", source_uri, "--out", patches.path, "--params-json", params_json],
    )
