"""Evaluate the challenger detector and the current champion on the same test split, then decide.

Outputs: `metrics.json` (VOC mAP@0.5 as seed 002 reports it, COCO mAP@0.5:0.95, per-class AP),
`decision.json` (every gate rule with value, threshold and verdict) and `predictions.png` (test
photos with predicted and true boxes). The same numbers are logged to the training run in MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch

from components.common.champion import load_champion
from components.common.detection_metrics import evaluate_detections
from components.common.detector import SUMMARY, DetectionSplit, load_image, load_split, predict
from components.common.device import pick_device
from components.common.errors import DataError
from components.common.io import read_json, write_json
from components.common.skip import not_trained, skipped, write_skipped, write_skipped_figure
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, metric_key, resolved_uri
from components.evaluate_detector.config import EvaluateDetectorConfig
from components.evaluate_detector.gate import decide

Predictions = list[tuple[np.ndarray, np.ndarray, np.ndarray]]


def _challenger(tracking: TrackingConfig, model_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model train_detector logged (its summary names it): exactly what promotion registers."""
    summary_path = model_dir / SUMMARY
    if not summary_path.is_file():
        raise DataError(summary_path, "not found; run train_detector first")
    summary = read_json(summary_path)
    mlflow.set_tracking_uri(resolved_uri(tracking))
    model = mlflow.pytorch.load_model(summary["model_uri"], map_location="cpu")
    return model.eval(), summary


def champion_detector(tracking: TrackingConfig, alias: str) -> tuple[torch.nn.Module | None, str | None]:
    """The detector behind `models:/<registered_detector>@<alias>`, or (None, None) when none yet."""
    model, version = load_champion(tracking, tracking.registered_detector, alias)
    return (None, None) if version is None else (model, str(version.version))


def score(preds: Predictions, test: DetectionSplit, classes: tuple[str, ...], iou: float) -> dict[str, Any]:
    """Flat test metrics of one detector (VOC interpolation; COCO for mAP@0.5:0.95)."""
    m = evaluate_detections(test.ground_truth(), preds, len(classes), iou_thresholds=(iou,))
    return {
        "test_map50": m["map50"],
        "test_map50_95": m["map50_95"],
        "iou_threshold": iou,
        "test_map_at_iou": m["map_at"][f"{iou:.2f}"],
        "n_test_images": m["n_images"],
        "n_test_boxes": m["n_gt"],
        "n_predictions": m["n_pred"],
        "per_class_ap50": {classes[k]: v for k, v in m["per_class_ap50"].items()},
    }


def _gate_view(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "map50": metrics["test_map_at_iou"],
        "n_images": metrics["n_test_images"],
        "iou_threshold": metrics["iou_threshold"],
    }


def plot_predictions(
    test: DetectionSplit, preds: Predictions, classes: tuple[str, ...], path: Path, n: int = 6, min_score: float = 0.3
) -> Path:
    """A few test photos: true boxes dashed green, predictions (score ≥ min_score) red with labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    shown = list(range(min(n, len(test.items))))
    cols = min(3, max(len(shown), 1))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), shown, strict=False):
        item, (boxes, scores, labels) = test.items[i], preds[i]
        # extent: pixel i covers [i, i+1), the boxes' continuous frame
        ax.imshow(load_image(item).permute(1, 2, 0).numpy(), extent=(0, item.width, item.height, 0))
        ax.set_title(item.path.name, fontsize=8)
        for x0, y0, x1, y1 in item.boxes:
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="lime", ls="--", lw=1.5))
        for (x0, y0, x1, y1), s, lab in list(zip(boxes, scores, labels, strict=True))[:10]:
            if s >= min_score:
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=1.5))
                ax.text(
                    x0,
                    y0,
                    f"{classes[int(lab)]} {s:.2f}",
                    color="white",
                    fontsize=7,
                    va="bottom",
                    bbox={"facecolor": "red", "alpha": 0.7, "pad": 1, "lw": 0},
                )
    fig.suptitle("green dashed: ground truth, red: prediction (label score)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(
    cfg: EvaluateDetectorConfig,
    task: TaskConfig,
    tracking: TrackingConfig,
    patch_dir: Path,
    model_dir: Path,
    out_dir: Path,
) -> dict[str, Any]:
    """Score challenger and champion on `detection/annotations_test.json`; write and log the verdict."""
    if reason := not_trained(task, "detector") or skipped(model_dir / SUMMARY):
        write_skipped(out_dir / "metrics.json", reason)
        for name in ("predictions.png",):
            write_skipped_figure(out_dir / name, reason)
        return write_skipped(out_dir / "decision.json", reason, passed=False, failed=[], rules=[])
    model, summary = _challenger(tracking, model_dir)
    test = load_split(patch_dir, "test", task.classes)
    if not test.items:
        raise DataError(test.annotations, "the test split has no images")
    device = pick_device("auto")
    preds = predict(model.to(device), test, device)
    challenger = score(preds, test, task.classes, cfg.iou_threshold)
    champ_model, champ_version = champion_detector(tracking, cfg.champion_alias)
    champion = None
    if champ_model is not None:
        champion = score(predict(champ_model.to(device), test, device), test, task.classes, cfg.iou_threshold)
    decision = decide(_gate_view(challenger), None if champion is None else _gate_view(champion), cfg.gate)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_predictions(test, preds, task.classes, out_dir / "predictions.png")
    write_json(out_dir / "metrics.json", {**challenger, "champion": champion, "champion_version": champ_version})
    report = {**decision.as_dict(), "run_id": summary["run_id"], "champion_version": champ_version}
    write_json(out_dir / "decision.json", report)
    mlflow.set_tracking_uri(resolved_uri(tracking))
    with mlflow.start_run(run_id=summary["run_id"]):
        flat = {
            **{k: v for k, v in challenger.items() if k.startswith(("test_", "n_"))},
            **{f"test_ap50_{c}": v for c, v in challenger["per_class_ap50"].items()},
        }
        mlflow.log_metrics({metric_key(k): float(v) for k, v in flat.items() if v is not None})
        mlflow.set_tag("gate_passed", str(decision.passed).lower())
        for name in ("decision.json", "metrics.json", "predictions.png"):
            mlflow.log_artifact(str(out_dir / name), artifact_path="evaluation")
    return report
