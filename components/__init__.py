"""LesionOps pipeline stages: one folder per stage, `python -m components.<name>` runs it."""

__version__ = "0.1.0"

# Every stage folder, in pipeline order: the CLI's stage commands and the per-stage Kubeflow
# settings (params.yaml `kubeflow.stages`) both read this one list.
STAGES = (
    "ingest_data",
    "validate_annotations",
    "crop_patches",
    "train_baseline",
    "train_model",
    "crossval",
    "evaluate_model",
    "train_detector",
    "evaluate_detector",
    "promote_model",
    "monitor_drift",
)
