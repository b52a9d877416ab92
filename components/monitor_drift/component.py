"""Kubeflow interface of monitor_drift: also surfaces retrain / alert for `dsl.If`.

The reference is a URI string, not an input artifact, so the monitoring pipeline can run on a
schedule on its own, against the crop output (or evaluate_model reference folder) of whichever
training run produced the champion. With `store_url` the window is read from the serving store
instead of `current_uri` (and without a reference_uri the champion's logged reference is used).
"""

from typing import NamedTuple

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def monitor_drift(
    reference_uri: str,
    source_uri: str,
    current_uri: str,
    params_json: str,
    accepted_feedback: int,
    report: dsl.Output[dsl.Artifact],
    drift_report: dsl.Output[dsl.HTML],
    history_uri: str = "",
    store_url: str = "",
) -> NamedTuple("Outputs", [("retrain", bool), ("alert", bool)]):
    import json
    import os
    from collections import namedtuple
    from pathlib import Path

    from components.common.kfp_outputs import publish_file
    from components.common.launch import launch

    args = ["--out", report.path, "--params-json", params_json]
    if store_url:  # the serving store: window, feedback counts and reviews all come from it
        args += ["--store", store_url]
    else:
        args += ["--current", current_uri, "--accepted-feedback", str(accepted_feedback)]
    if reference_uri:
        args += ["--reference", reference_uri]
    if source_uri:  # only for a crop_patches reference (raw images it was cropped from)
        args += ["--source", source_uri]
    if history_uri:  # a persistent path (volume, bucket mount): without it every window stands alone
        args += ["--history", history_uri]
    launch("monitor_drift", args)
    # the Evidently page with the calibrated verdict on top (components/monitor_drift/report.py)
    publish_file(drift_report, Path(report.path) / "drift_report.html", "<p>monitor_drift wrote no drift report</p>")
    with open(os.path.join(report.path, "decision.json"), encoding="utf-8") as fh:
        decision = json.load(fh)
    return namedtuple("Outputs", ["retrain", "alert"])(bool(decision["retrain"]), bool(decision["alert"]))
