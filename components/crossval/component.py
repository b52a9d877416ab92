"""Kubeflow interface of crossval (in the pipeline only when `crossval.enabled`)."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def crossval(
    patches: dsl.Input[dsl.Dataset], params_json: str, data_version: str, report: dsl.Output[dsl.Artifact]
) -> None:
    from components.common.launch import launch

    launch(
        "crossval",
        ["--patches", patches.path, "--out", report.path, "--data-version", data_version, "--params-json", params_json],
    )
