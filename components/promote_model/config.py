"""The `promote_model` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromoteConfig:
    """The `promote_model` section of params.yaml."""

    alias: str = "champion"
    previous_alias: str = "previous"
    audit_log: str = "mlruns/audit.jsonl"
    export_onnx: bool = False  # log onnx/model.onnx with a promoted classifier (serve.backend: onnx)
    lock_timeout_s: float = 30.0
