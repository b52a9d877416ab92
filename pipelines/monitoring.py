"""The monitoring pipeline: compare a window of clinic images with the champion's reference and decide.

Meant to run on a schedule (pipelines/schedule.py: a Kubeflow recurring run per window). With
`store_url` the window, feedback counts and reviews come from the serving store (PostgreSQL on a
cluster) and the reference from the champion's MLflow run; otherwise from `current_uri` and
`reference_uri`. It records the decision (drift.json, drift_report.html, decision.json in the
`report` artifact; retrain / alert as task outputs). Acting on "retrain" — merging the accepted
feedback into the DVC-tracked data and submitting the training pipeline — is `lesionops monitor`
(lesionops/retrain.py) with `retrain.target: kubeflow`: it needs the feedback files and DVC, which
live with the data, not in a pipeline pod.
"""

from collections.abc import Callable

from kfp import dsl

from components.monitor_drift.component import monitor_drift
from pipelines.kubeflow import KubeflowConfig, configure

PIPELINE_NAME = "lesionops-monitoring"


def build_monitoring_pipeline(kubeflow: KubeflowConfig | None = None) -> Callable[..., None]:
    """The monitoring pipeline, its task set up by `kubeflow` (never cached: every window is new)."""
    cfg = kubeflow or KubeflowConfig()

    @dsl.pipeline(name=PIPELINE_NAME, description="Detect image drift and acquisition failures; decide on retraining.")
    def monitoring_pipeline(
        params_json: str,
        store_url: str = "",
        reference_uri: str = "",
        source_uri: str = "",
        current_uri: str = "",
        accepted_feedback: int = 0,
        history_uri: str = "",
    ) -> None:
        configure(
            monitor_drift(
                reference_uri=reference_uri,
                source_uri=source_uri,
                current_uri=current_uri,
                params_json=params_json,
                accepted_feedback=accepted_feedback,
                history_uri=history_uri,
                store_url=store_url,
            ),
            "monitor_drift",
            cfg,
        ).set_display_name("monitor_drift")

    return monitoring_pipeline


monitoring_pipeline = build_monitoring_pipeline()
