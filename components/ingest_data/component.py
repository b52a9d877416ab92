"""Kubeflow interface of ingest_data: declares inputs/outputs and calls the stage's entry point."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest_data(source_uri: str, params_json: str, manifest: dsl.Output[dsl.Dataset]) -> None:
    from components.common.launch import launch

    launch("ingest_data", ["--source", source_uri, "--out", manifest.path, "--params-json", params_json])
