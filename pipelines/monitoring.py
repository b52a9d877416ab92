"""The monitoring pipeline: compare a window of clinic images with the training data and decide.

Meant to run on a schedule (a recurring run per window). It records the decision (drift.json,
drift_report.html, decision.json in the `report` artifact; retrain / alert as task outputs).
"""

from kfp import dsl

from components.monitor_drift.component import monitor_drift

PIPELINE_NAME = "lesionops-monitoring"


@dsl.pipeline(name=PIPELINE_NAME, description="Detect image drift and acquisition failures; decide on retraining.")
def monitoring_pipeline(reference_uri: str, source_uri: str, current_uri: str, params_json: str,
                        accepted_feedback: int = 0, history_uri: str = "") -> None:
    monitor_drift(reference_uri=reference_uri, source_uri=source_uri, current_uri=current_uri,
                  params_json=params_json, accepted_feedback=accepted_feedback,
                  history_uri=history_uri).set_display_name("monitor_drift")
    # The retrain trigger comes with the serving issue: then
    # `with dsl.If(monitor.outputs["retrain"] == True):` will start the training pipeline.
    # Until then the decision is recorded in the task's outputs and its `report` artifact.
