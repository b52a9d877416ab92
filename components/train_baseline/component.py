"""Kubeflow interface of train_baseline."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_baseline(
    patches: dsl.Input[dsl.Dataset], params_json: str, data_version: str, baseline: dsl.Output[dsl.Artifact]
) -> None:
    from components.common.launch import launch

    launch(
        "train_baseline",
        [
            "--patches",
            patches.path,
            "--out",
            baseline.path,
            "--data-version",
            data_version,
            "--params-json",
            params_json,
        ],
    )
