"""Kubeflow interface of promote_model (the pipeline runs it only inside `dsl.If(gate_passed)`)."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def promote_model(
    model: dsl.Input[dsl.Model],
    evaluation: dsl.Input[dsl.Artifact],
    patches: dsl.Input[dsl.Dataset],
    params_json: str,
    promotion: dsl.Output[dsl.Artifact],
) -> None:
    """`patches` gives the model card its per-split class counts (crop_report.json)."""
    from components.common.launch import launch

    launch(
        "promote_model",
        [
            "--model",
            model.path,
            "--evaluation",
            evaluation.path,
            "--patches",
            patches.path,
            "--out",
            promotion.path,
            "--params-json",
            params_json,
        ],
    )
