"""Kubeflow interface of validate_annotations."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_annotations(manifest: dsl.Input[dsl.Dataset], params_json: str, accepted: dsl.Output[dsl.Dataset]) -> None:
    from components.common.launch import launch

    launch("validate_annotations", ["--manifest", manifest.path, "--out", accepted.path, "--params-json", params_json])
