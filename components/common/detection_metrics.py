"""Object-detection mAP in pure numpy: VOC all-point AP@0.5 (what seed 002 reports) and COCO AP.

Matching follows pycocotools' COCOeval for boxes (area range "all", maxDets 100 per image and
class, no crowd boxes): detections are taken by descending score and each one claims the unmatched
ground-truth box of its class with the highest IoU, if that IoU reaches the threshold; a ground
truth is matched at most once. IoU uses continuous coordinates (width = x2 - x1, no "+1"), as
pycocotools does. Only the interpolation differs between the two methods:

* ``voc``  — all-point interpolation (area under the monotone precision envelope, VOC 2010+);
* ``coco`` — 101 recall points (0, 0.01, ..., 1), as COCOeval; ``map50_95`` always uses it,
  averaged over IoU 0.50:0.05:0.95 and over the classes that have ground truth.

A class without ground truth has no AP (None) and is left out of every mean, as COCOeval does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_DETS = 100  # per image and class, as COCOeval's maxDets[-1]
_EPS = float(np.spacing(1))
# Built exactly as COCOeval builds them, so 0.7 is the same float here and there.
COCO_IOUS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALLS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)

GroundTruth = tuple[np.ndarray, np.ndarray]  # boxes N×4 xyxy, labels N (0-based)
Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes N×4 xyxy, scores N, labels N


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a) × len(b)) of xyxy boxes in continuous coordinates."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match(ious: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """True positives (T × D) for detections already sorted by score, one image and class.

    Mirrors COCOeval.evaluateImg: among the still-unmatched ground truths, the one with the highest
    IoU ≥ threshold wins; ties go to the later ground truth (COCOeval's `<` comparison).
    """
    n_det, n_gt = ious.shape
    tp = np.zeros((len(thresholds), n_det), dtype=bool)
    for ti, thr in enumerate(thresholds):
        taken = np.zeros(n_gt, dtype=bool)
        floor = min(float(thr), 1 - 1e-10)
        for d in range(n_det):
            free = np.flatnonzero(~taken & (ious[d] >= floor))
            if free.size == 0:
                continue
            values = ious[d, free]
            g = free[len(values) - 1 - int(np.argmax(values[::-1]))]
            taken[g] = True
            tp[ti, d] = True
    return tp


def _ap_voc(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP: area under the precision envelope (VOC 2010+ devkit)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _ap_coco(recall: np.ndarray, precision: np.ndarray) -> float:
    """101-point interpolated AP exactly as COCOeval.accumulate (0 beyond the reached recall)."""
    if precision.size == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, COCO_RECALLS, side="left")
    q = np.zeros(len(COCO_RECALLS))
    reached = idx < envelope.size
    q[reached] = envelope[idx[reached]]
    return float(np.mean(q))


def _class_curves(
    gts: Sequence[GroundTruth], preds: Sequence[Prediction], cls: int, thresholds: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """(n_gt, scores in COCO's accumulation order, tp T×D) for one class over all images."""
    scores, hits, n_gt = [], [], 0
    for (g_boxes, g_labels), (p_boxes, p_scores, p_labels) in zip(gts, preds, strict=True):
        g = np.asarray(g_boxes, dtype=np.float64).reshape(-1, 4)[np.asarray(g_labels) == cls]
        keep = np.asarray(p_labels) == cls
        s = np.asarray(p_scores, dtype=np.float64)[keep]
        order = np.argsort(-s, kind="mergesort")[:MAX_DETS]
        d = np.asarray(p_boxes, dtype=np.float64).reshape(-1, 4)[keep][order]
        n_gt += len(g)
        scores.append(s[order])
        hits.append(_match(box_iou(d, g), thresholds))
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    tp = np.concatenate(hits, axis=1) if hits else np.zeros((len(thresholds), 0), dtype=bool)
    order = np.argsort(-all_scores, kind="mergesort")
    return n_gt, all_scores[order], tp[:, order]


def _ap(tp: np.ndarray, n_gt: int, method: str) -> float:
    """AP of one class at one IoU threshold from its score-ordered true-positive flags."""
    tps = np.cumsum(tp, dtype=np.float64)
    fps = np.cumsum(~tp, dtype=np.float64)
    recall = tps / n_gt
    precision = tps / (tps + fps + _EPS)
    return _ap_voc(recall, precision) if method == "voc" else _ap_coco(recall, precision)


def _check(gts: Sequence[GroundTruth], preds: Sequence[Prediction], n_classes: int, method: str) -> None:
    if method not in ("voc", "coco"):
        raise ValueError(f"method must be 'voc' or 'coco', found {method!r}")
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} ground-truth images but {len(preds)} prediction lists")
    for labels in [g[1] for g in gts] + [p[2] for p in preds]:
        arr = np.asarray(labels)
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"labels must be 0-based class indices below {n_classes}, found {arr.tolist()}")


def evaluate_detections(
    gts: Sequence[GroundTruth],
    preds: Sequence[Prediction],
    n_classes: int,
    iou_thresholds: Sequence[float] = (0.5,),
    method: str = "voc",
) -> dict[str, Any]:
    """mAP of `preds` against `gts` (one entry per image, same order).

    `map50` and `per_class_ap50` use `method`'s interpolation at IoU 0.5; `map_at` gives the mean AP
    (same interpolation) at each of `iou_thresholds`; `map50_95` is COCO's primary metric.
    Means are None when no class has ground truth.
    """
    _check(gts, preds, n_classes, method)
    extra = np.asarray([t for t in iou_thresholds if not np.any(np.isclose(t, COCO_IOUS))], dtype=np.float64)
    thresholds = np.concatenate([COCO_IOUS, extra])
    index = {float(t): i for i, t in enumerate(COCO_IOUS)}
    at50 = index[0.5]
    per50: dict[int, float | None] = {}
    coco_means: list[float] = []
    at: dict[float, list[float]] = {float(t): [] for t in iou_thresholds}
    for cls in range(n_classes):
        n_gt, _, tp = _class_curves(gts, preds, cls, thresholds)
        if n_gt == 0:
            per50[cls] = None
            continue
        per50[cls] = _ap(tp[at50], n_gt, method)
        coco_means.append(float(np.mean([_ap(tp[i], n_gt, "coco") for i in range(len(COCO_IOUS))])))
        for t in at:
            row = int(np.flatnonzero(np.isclose(thresholds, t))[0])
            at[t].append(_ap(tp[row], n_gt, method))
    valid = [v for v in per50.values() if v is not None]
    return {
        "map50": float(np.mean(valid)) if valid else None,
        "map50_95": float(np.mean(coco_means)) if coco_means else None,
        "map_at": {f"{t:.2f}": (float(np.mean(v)) if v else None) for t, v in at.items()},
        "per_class_ap50": per50,
        "method": method,
        "n_images": len(gts),
        "n_gt": int(sum(len(np.asarray(g[1])) for g in gts)),
        "n_pred": int(sum(len(np.asarray(p[1])) for p in preds)),
    }
