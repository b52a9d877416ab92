"""Kubeflow interface of validate_annotations: the validation report also as an `HTML` output (KFP UI)."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_annotations(
    manifest: dsl.Input[dsl.Dataset], params_json: str, accepted: dsl.Output[dsl.Dataset], report: dsl.Output[dsl.HTML]
) -> None:
    from pathlib import Path

    from components.common.kfp_outputs import publish_file
    from components.common.launch import launch

    launch("validate_annotations", ["--manifest", manifest.path, "--out", accepted.path, "--params-json", params_json])
    publish_file(report, Path(accepted.path) / "validation_report.html", "<p>validate_annotations wrote no report</p>")
