"""Kubeflow interface of ingest_data: declares inputs/outputs and calls the stage's entry point."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest_data(
    source_uri: str, params_json: str, manifest: dsl.Output[dsl.Dataset], data_version: str = "unknown"
) -> None:
    """`data_version` is the content fingerprint of `source_uri` (pipelines/datasource.py, computed
    when the run is submitted). The stage does not need it; it is an input because KFP's cache key
    covers a task's inputs, so a cached manifest is reused only for the same bytes, not merely the
    same URI."""
    from components.common.launch import launch

    print(f"ingest_data: source {source_uri} (data version {data_version})", flush=True)
    launch("ingest_data", ["--source", source_uri, "--out", manifest.path, "--params-json", params_json])
