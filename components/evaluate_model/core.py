"""Evaluate the challenger and the current champion on the same test split, then decide.

Outputs: `metrics.json` (DVC metrics: flat test metrics, patient-bootstrap CIs, ROC-AUC, ECE
before/after temperature scaling and the fitted temperature for serving, the champion's block
and the paired difference CI), `decision.json` (every gate rule with value, threshold, verdict
and reason), `subgroups.json` (metrics per skin tone and body site with CIs: subgroups.py),
`confusion_matrix.png`, `reliability.png`, `roc.png`, and `reference/` (the drift reference
serving's champion is monitored against: components/monitor_drift/reference.py). The same numbers
and files are logged to the training run in MLflow.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from scipy.special import softmax

from components.common.bootstrap import (
    BootstrapConfig,
    confidence_intervals,
    paired_difference,
    patient_counts,
    resampling_units,
)
from components.common.champion import load_champion
from components.common.classifier.checkpoint import CHECKPOINT, SUMMARY
from components.common.classifier.data import PatchSet, load_split
from components.common.classifier.models import build_model
from components.common.device import pick_device
from components.common.drift_reference import ARTIFACT_PATH as REFERENCE_DIR
from components.common.drift_reference import build_reference
from components.common.errors import DataError
from components.common.io import read_json, write_json
from components.common.metrics import classification_metrics
from components.common.plot_data import (
    CONFUSION_CSV,
    CONFUSION_HEADER,
    ROC_CSV,
    ROC_HEADER,
    write_confusion,
    write_roc,
    write_skipped_tables,
)
from components.common.preprocessing import Normalization, normalize
from components.common.skip import not_trained, skipped, write_skipped, write_skipped_figure
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, metric_key
from components.evaluate_model import plots
from components.evaluate_model.baseline import read_baseline
from components.evaluate_model.calibration import (
    calibrated,
    ece_noise_floor,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from components.evaluate_model.gate import GateConfig, decide, resolution, worst_gated
from components.evaluate_model.subgroups import SUBGROUPS_FILE, group_labels, subgroup_table

__all__ = ["BootstrapConfig", "EvaluateConfig", "GateConfig", "run"]

VALIDATION_FILE = "validation_report.json"
PLOTS = ("confusion_matrix.png", "reliability.png", "roc.png")
# The numbers behind the figures (dvc.yaml `plots:`, the KFP UI's ClassificationMetrics)
TABLES = {CONFUSION_CSV: CONFUSION_HEADER, ROC_CSV: ROC_HEADER, plots.RELIABILITY_CSV: plots.RELIABILITY_HEADER}


@dataclass(frozen=True)
class EvaluateConfig:
    """The `evaluate_model` section of params.yaml."""

    champion_alias: str = "champion"
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    calibration_bins: int = 15
    calibration_draws: int = 200  # simulations behind test_ece_noise_floor
    gate: GateConfig = field(default_factory=GateConfig)


@dataclass(frozen=True)
class Scored:
    """One model on the test split: its metrics (with CIs and calibration), logits and predictions."""

    metrics: dict[str, Any]
    logits: np.ndarray
    pred: np.ndarray


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, images: torch.Tensor, device: torch.device, norm: Normalization, batch: int = 256
) -> np.ndarray:
    """Raw logits (float64) for uint8 images normalised as the model was trained: temperature scaling
    needs them before the softmax. The caller puts the model in eval mode (exported registry models
    are frozen in it)."""
    out = [model(normalize(images[i : i + batch].to(device), norm)).float().cpu() for i in range(0, len(images), batch)]
    return torch.cat(out).double().numpy() if out else np.zeros((0, 0))


@dataclass(frozen=True)
class Champion:
    """The registry model behind an alias, with the input size and normalisation it was trained with."""

    model: torch.nn.Module
    version: str
    image_size: int | None  # None: its run logged no preprocessing.json
    norm: Normalization


def _challenger(train_dir: Path, n_classes: int) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    ckpt_path, summary_path = train_dir / CHECKPOINT, train_dir / SUMMARY
    for p in (ckpt_path, summary_path):
        if not p.is_file():
            raise DataError(p, "not found; run train_model first")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = build_model(ckpt["config"]["arch"], n_classes, ckpt["config"]["dropout"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt, read_json(summary_path)


def _logged_preprocessing(run_id: str) -> tuple[int | None, Normalization]:
    """The input size and normalisation the champion was trained with (its `preprocessing.json`);
    (None, ImageNet's statistics) when it logged none, as models before the file existed."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="preprocessing.json", dst_path=tmp)
            prep = json.loads(Path(path).read_text())
            return int(prep["image_size"]), Normalization.from_dict(prep)
    except (MlflowException, OSError, KeyError, ValueError):
        return None, Normalization()


def champion_model(tracking: TrackingConfig, alias: str) -> Champion | None:
    """The model behind `models:/<name>@<alias>` with its preprocessing; None when there is no champion yet."""
    module, version = load_champion(tracking, tracking.registered_model, alias)
    if version is None:
        return None
    return Champion(module, str(version.version), *_logged_preprocessing(str(version.run_id)))


def leak_patients(patch_dir: Path) -> list[str]:
    """Test patients that also appear in train or val, computed from the patch table itself (a
    flag written upstream could be stale or wrong; the rows cannot)."""
    table = pd.read_parquet(patch_dir / "patches.parquet", columns=["patient_id", "split"])
    patients = table.patient_id.astype(str)
    test = set(patients[table.split == "test"])
    return sorted(test & set(patients[table.split.isin(["train", "val"])]))


def read_validation(validation_dir: Path | None) -> bool | None:
    """validate_annotations' verdict (`validation_report.json` → "passed"), None when not given."""
    if validation_dir is None:
        return None
    path = validation_dir / VALIDATION_FILE
    if not path.is_file():
        raise DataError(path, "not found; run validate_annotations first (or leave out --validation)")
    passed = read_json(path).get("passed")
    if not isinstance(passed, bool):
        raise DataError(path, f"expected a boolean 'passed', found {passed!r}")
    return passed


def score(
    model: torch.nn.Module,
    test: PatchSet,
    val: PatchSet,
    classes: tuple[str, ...],
    cfg: EvaluateConfig,
    boot: tuple[np.ndarray, np.ndarray],
    device: torch.device,
    norm: Normalization,
) -> Scored:
    """Metrics of one model on test; its temperature is fitted on val (never on test)."""
    logits = predict_logits(model.to(device), test.images, device, norm)
    y, probs = test.labels.numpy(), softmax(logits, axis=1)
    pred = probs.argmax(1)
    m = classification_metrics(y, pred, classes, probs)
    temperature = fit_temperature(predict_logits(model, val.images, device, norm), val.labels.numpy())
    scaled = calibrated(logits, temperature)
    m.update(
        temperature=temperature,
        ece=expected_calibration_error(probs, y, cfg.calibration_bins),
        ece_calibrated=expected_calibration_error(scaled, y, cfg.calibration_bins),
        ece_noise_floor=ece_noise_floor(scaled, cfg.calibration_bins, cfg.calibration_draws, cfg.bootstrap.seed),
        ci=confidence_intervals(y, pred, *boot, len(classes), cfg.bootstrap.confidence),
    )
    return Scored(m, logits, pred)


def summary(m: dict[str, Any]) -> dict[str, Any]:
    """The metrics.json block of one model: flat DVC-friendly keys plus CIs and per-class detail."""
    return {
        "test_accuracy": m["accuracy"],
        "test_macro_f1": m["macro_f1"],
        "test_macro_recall": m["macro_recall"],
        "n_test": m["n"],
        **{f"test_recall_{c}": pc["recall"] for c, pc in m["per_class"].items()},
        "test_roc_auc_macro": m["roc_auc_macro"],
        "test_ece": m["ece"],
        "test_ece_calibrated": m["ece_calibrated"],
        "test_ece_noise_floor": m["ece_noise_floor"],
        "temperature": m["temperature"],
        "ci": m["ci"],
        "per_class": m["per_class"],
        "confusion_matrix": m["confusion_matrix"],
    }


def _champion(
    tracking: TrackingConfig,
    cfg: EvaluateConfig,
    patch_dir: Path,
    classes: tuple[str, ...],
    size: int,
    boot: tuple[np.ndarray, np.ndarray],
    device: torch.device,
    data: tuple[PatchSet, PatchSet],
) -> tuple[Scored | None, str | None]:
    """Score the registry champion on the same test patches (resized to its own input size and
    normalised with its own statistics)."""
    champ = champion_model(tracking, cfg.champion_alias)
    if champ is None:
        return None, None
    if champ.image_size is not None and champ.image_size != size:
        data = (
            load_split(patch_dir, "test", classes, champ.image_size),
            load_split(patch_dir, "val", classes, champ.image_size),
        )
    return score(champ.model, data[0], data[1], classes, cfg, boot, device, champ.norm), champ.version


def _plots(out_dir: Path, challenger: Scored, y: np.ndarray, classes: tuple[str, ...], bins: int) -> None:
    m = challenger.metrics
    plots.plot_confusion(np.array(m["confusion_matrix"]), classes, out_dir / "confusion_matrix.png")
    raw, cal = softmax(challenger.logits, axis=1), calibrated(challenger.logits, m["temperature"])
    plots.plot_reliability(
        {
            "raw": (reliability_bins(raw, y, bins), m["ece"]),
            f"T = {m['temperature']:.2f} (fitted on val)": (reliability_bins(cal, y, bins), m["ece_calibrated"]),
        },
        out_dir / "reliability.png",
    )
    plots.plot_roc(y, raw, classes, {c: pc["roc_auc"] for c, pc in m["per_class"].items()}, out_dir / "roc.png")
    write_confusion(y, challenger.pred, classes, out_dir / CONFUSION_CSV)
    write_roc(y, raw, out_dir / ROC_CSV)
    plots.write_reliability(
        reliability_bins(raw, y, bins), reliability_bins(cal, y, bins), out_dir / plots.RELIABILITY_CSV
    )


def _metrics_doc(
    challenger: Scored, champion: Scored | None, baseline: dict[str, Any] | None, diff_ci: list[float] | None
) -> dict[str, Any]:
    """metrics.json's model part: the challenger's block, its gain on the baseline, the champion's block."""
    f1 = challenger.metrics["macro_f1"]
    return {
        **summary(challenger.metrics),
        "baseline_macro_f1": None if baseline is None else baseline["macro_f1"],
        "baseline_model_uri": None if baseline is None else baseline["model_uri"],
        "gain_vs_baseline": None if baseline is None else f1 - baseline["macro_f1"],
        "champion": None if champion is None else summary(champion.metrics),
        "diff_macro_f1": None if champion is None else f1 - champion.metrics["macro_f1"],
        "diff_ci": diff_ci,
    }


def _worst_groups(groups: dict[str, Any], min_size: int) -> dict[str, float | None]:
    """Flat scalars for DVC, MLflow and the KFP UI: each grouping's worst gated per-class recall."""
    worst = {g: worst_gated(rows, min_size) for g, rows in groups["groupings"].items()}
    return {f"worst_group_recall_{g}": None if w is None else w["worst_recall"] for g, w in worst.items()}


def _log(run_id: str, metrics: dict[str, Any], passed: bool, out_dir: Path) -> None:
    """Numbers and files onto the training run, so the registry entry carries its evaluation."""
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    for name, (lo, hi) in metrics["ci"].items():
        numbers.update({f"test_{name}_ci_low": lo, f"test_{name}_ci_high": hi})
    if metrics["diff_ci"] is not None:
        numbers.update({"diff_macro_f1_ci_low": metrics["diff_ci"][0], "diff_macro_f1_ci_high": metrics["diff_ci"][1]})
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({metric_key(k): v for k, v in numbers.items()})
        mlflow.set_tag("gate_passed", str(passed).lower())
        for name in ("decision.json", "metrics.json", SUBGROUPS_FILE, *PLOTS, *TABLES):
            mlflow.log_artifact(str(out_dir / name), artifact_path="evaluation")
        mlflow.log_artifacts(str(out_dir / REFERENCE_DIR), artifact_path=REFERENCE_DIR)  # drift reference


def run(
    cfg: EvaluateConfig,
    task: TaskConfig,
    tracking: TrackingConfig,
    patch_dir: Path,
    train_dir: Path,
    out_dir: Path,
    baseline_dir: Path | None = None,
    validation_dir: Path | None = None,
) -> dict[str, Any]:
    if reason := not_trained(task, "classifier") or skipped(train_dir / SUMMARY):
        write_skipped(out_dir / "metrics.json", reason)
        for name in PLOTS:
            write_skipped_figure(out_dir / name, reason)
        write_skipped_tables(out_dir, TABLES)
        write_skipped(out_dir / REFERENCE_DIR / "skipped.json", reason)
        write_skipped(out_dir / SUBGROUPS_FILE, reason)
        return write_skipped(out_dir / "decision.json", reason, passed=False, failed=[], rules=[])
    validation_passed = read_validation(validation_dir)
    baseline = read_baseline(baseline_dir, tracking, patch_dir, task.classes)
    model, ckpt, train_summary = _challenger(train_dir, len(task.classes))
    size, norm = ckpt["config"]["image_size"], Normalization.from_dict(ckpt.get("normalization"))
    test, val = load_split(patch_dir, "test", task.classes, size), load_split(patch_dir, "val", task.classes, size)
    if len(test.labels) == 0:
        raise DataError(patch_dir / "patches.parquet", "the test split is empty")
    device, y = pick_device("auto"), test.labels.numpy()
    units = resampling_units(test.patients, patch_dir)
    boot = patient_counts(units, cfg.bootstrap)
    challenger = score(model, test, val, task.classes, cfg, boot, device, norm)
    groups = subgroup_table(
        group_labels(patch_dir, task.classes), y, challenger.pred, test.patients, units, task.classes, cfg.bootstrap
    )
    champion, champ_version = _champion(tracking, cfg, patch_dir, task.classes, size, boot, device, (test, val))
    diff_ci = (
        None
        if champion is None
        else paired_difference(y, challenger.pred, champion.pred, *boot, len(task.classes), cfg.bootstrap.confidence)
    )
    leaks = leak_patients(patch_dir)
    n_patients = int(len(set(test.patients)))
    resolved = resolution(diff_ci, challenger.metrics["ci"]["macro_f1"], n_patients, len(y), cfg.bootstrap.confidence)
    decision = decide(
        challenger.metrics,
        None if champion is None else champion.metrics,
        cfg.gate,
        baseline=baseline,
        validation_passed=validation_passed,
        leak_patients=leaks,
        diff_ci=diff_ci,
        test_resolution=resolved,
        subgroups=groups,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    _plots(out_dir, challenger, y, task.classes, cfg.calibration_bins)
    # What serving's champion is monitored against (components/monitor_drift/reference.py).
    build_reference(
        model,
        [("val", val), ("test", test)],
        task.classes,
        challenger.metrics["temperature"],
        patch_dir,
        out_dir / REFERENCE_DIR,
        norm,
        device=device,
    )
    metrics = {
        **_metrics_doc(challenger, champion, baseline, diff_ci),
        "champion_version": champ_version,
        "bootstrap": asdict(cfg.bootstrap),
        "n_test_patients": n_patients,
        "test_resolution_macro_f1": resolved["macro_f1"],
        "leak_patients": leaks,
        "validation_passed": validation_passed,
        **_worst_groups(groups, cfg.gate.min_group_size),
    }
    write_json(out_dir / "metrics.json", metrics)
    gate = {k: getattr(cfg.gate, k) for k in ("min_group_size", "min_group_recall")}
    write_json(out_dir / SUBGROUPS_FILE, {**groups, **gate})
    report = {**decision.as_dict(), "run_id": train_summary["run_id"], "champion_version": champ_version}
    write_json(out_dir / "decision.json", report)
    _log(train_summary["run_id"], metrics, decision.passed, out_dir)
    return report
