"""detection_metrics against pycocotools (the reference COCO evaluator) and hand-computed VOC cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from components.common.detection_metrics import box_iou, evaluate_detections

N_CLASSES = 3  # class 2 never has ground truth in the random cases (only false positives)


def random_case(seed: int, n_images: int = 10) -> tuple[list, list]:
    """Jittered ground truth as predictions, plus misses, duplicates, wrong labels and pure FPs."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n_images):
        n = 0 if i % 4 == 3 else int(rng.integers(1, 5))  # every 4th image is a negative
        xy = rng.uniform(0, 120, (n, 2))
        wh = rng.uniform(8, 60, (n, 2))
        g_boxes = np.concatenate([xy, xy + wh], 1)
        g_labels = rng.integers(0, 2, n)
        boxes, scores, labels = [], [], []
        for box, label, side in zip(g_boxes, g_labels, wh, strict=True):
            copies = int(rng.choice([0, 1, 1, 1, 2]))  # missed, found, found twice
            for _ in range(copies):
                boxes.append(box + rng.normal(0, 0.15, 4) * np.tile(side, 2))
                labels.append(label if rng.random() > 0.1 else 1 - label)
                scores.append(rng.uniform(0.05, 1.0))
        for _ in range(int(rng.integers(0, 3))):
            xy0 = rng.uniform(0, 140, 2)
            boxes.append(np.concatenate([xy0, xy0 + rng.uniform(5, 40, 2)]))
            labels.append(int(rng.integers(0, N_CLASSES)))
            scores.append(rng.uniform(0.05, 1.0))
        p_boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        p_boxes[:, 2:] = np.maximum(p_boxes[:, 2:], p_boxes[:, :2] + 1.0)  # keep boxes positive-size
        gts.append((g_boxes, g_labels))
        preds.append((p_boxes, np.array(scores), np.array(labels, dtype=np.int64)))
    return gts, preds


def xywh(box: np.ndarray) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def pycocotools_eval(gts: list, preds: list) -> COCOeval:
    images, anns, dets = [], [], []
    for image_id, ((g_boxes, g_labels), (p_boxes, p_scores, p_labels)) in enumerate(zip(gts, preds), start=1):
        images.append({"id": image_id, "width": 200, "height": 200, "file_name": f"{image_id}.jpg"})
        for box, label in zip(g_boxes, g_labels, strict=True):
            bbox = xywh(box)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
        for box, score, label in zip(p_boxes, p_scores, p_labels, strict=True):
            dets.append({"image_id": image_id, "category_id": int(label) + 1, "bbox": xywh(box), "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(N_CLASSES)],
        }
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(dets), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


@pytest.mark.parametrize("seed", range(6))
def test_coco_numbers_match_pycocotools(seed: int) -> None:
    gts, preds = random_case(seed)
    ref = pycocotools_eval(gts, preds)
    ours = evaluate_detections(gts, preds, N_CLASSES, method="coco")
    assert ours["map50_95"] == pytest.approx(ref.stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(ref.stats[1], abs=1e-6)
    ref_ap50 = ref.eval["precision"][0, :, :, 0, -1].mean(axis=0)  # T=0.5, all recalls, area all, 100 dets
    for cls in range(N_CLASSES):
        expected = None if ref_ap50[cls] < 0 else pytest.approx(ref_ap50[cls], abs=1e-6)
        assert ours["per_class_ap50"][cls] == expected
    assert ours["per_class_ap50"][2] is None  # no ground truth → no AP, not 0
    # VOC interpolation changes AP, never the matching: same classes, same counts.
    voc = evaluate_detections(gts, preds, N_CLASSES)
    assert voc["map50_95"] == ours["map50_95"]
    assert [k for k, v in voc["per_class_ap50"].items() if v is None] == [2]
    assert (voc["n_images"], voc["n_gt"], voc["n_pred"]) == (
        len(gts),
        sum(len(g[1]) for g in gts),
        sum(len(p[1]) for p in preds),
    )


def one(boxes: list, labels: list) -> tuple[np.ndarray, np.ndarray]:
    return np.array(boxes, dtype=float).reshape(-1, 4), np.array(labels, dtype=np.int64)


def pred(boxes: list, scores: list, labels: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array(boxes, dtype=float).reshape(-1, 4), np.array(scores, dtype=float), np.array(labels)


A, B, FAR = [0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]


@pytest.mark.parametrize(
    ("gt", "prediction", "voc_ap", "coco_ap"),
    [
        pytest.param(one([A], [0]), pred([A], [0.9], [0]), 1.0, 1.0, id="perfect"),
        # TP, FP, TP: P/R = (1, .5), (.5, .5), (2/3, 1) → .5·1 + .5·2/3; COCO: 51 points at 1, 50 at 2/3
        pytest.param(
            one([A, B], [0, 0]),
            pred([A, FAR, B], [0.9, 0.8, 0.7], [0, 0, 0]),
            5 / 6,
            (51 + 50 * 2 / 3) / 101,
            id="tp-fp-tp",
        ),
        pytest.param(one([A, B], [0, 0]), pred([A], [0.9], [0]), 0.5, 51 / 101, id="missed-box"),
        # two detections on A: the second is a false positive, B is never found → recall stays 0.5
        pytest.param(one([A, B], [0, 0]), pred([A, A], [0.9, 0.8], [0, 0]), 0.5, 51 / 101, id="gt-matched-once"),
        pytest.param(one([A], [0]), pred([A], [0.9], [1]), 0.0, 0.0, id="wrong-label"),
        pytest.param(one([A], [0]), pred([], [], []), 0.0, 0.0, id="no-predictions"),
        pytest.param(one([A], [0]), pred([[0, 0, 10, 5]], [0.9], [0]), 1.0, 1.0, id="iou-exactly-0.5-counts"),
        pytest.param(one([A], [0]), pred([[0, 0, 10, 4.9]], [0.9], [0]), 0.0, 0.0, id="iou-below-0.5"),
    ],
)
def test_hand_computed_single_class(gt: tuple, prediction: tuple, voc_ap: float, coco_ap: float) -> None:
    voc = evaluate_detections([gt], [prediction], 2)
    assert voc["per_class_ap50"] == {0: pytest.approx(voc_ap), 1: None}
    assert voc["map50"] == pytest.approx(voc_ap)
    coco = evaluate_detections([gt], [prediction], 2, method="coco")
    assert coco["map50"] == pytest.approx(coco_ap)


def test_class_without_ground_truth_is_left_out_of_the_mean() -> None:
    gts = [one([A], [0]), one([], [])]
    preds = [pred([A, B], [0.9, 0.8], [0, 1]), pred([FAR], [0.7], [1])]
    out = evaluate_detections(gts, preds, 2)
    assert out["per_class_ap50"] == {0: pytest.approx(1.0), 1: None}
    assert out["map50"] == pytest.approx(1.0) and out["n_images"] == 2 and out["n_gt"] == 1 and out["n_pred"] == 3


def test_nothing_to_score_gives_none_not_zero() -> None:
    out = evaluate_detections([one([], [])], [pred([A], [0.5], [0])], 2)
    assert out["map50"] is None and out["map50_95"] is None
    assert out["per_class_ap50"] == {0: None, 1: None}


def test_other_iou_thresholds() -> None:
    # IoU([0,0,10,10], [0,0,10,4]) = 0.4: a hit at 0.3, a miss at 0.5 and 0.75
    out = evaluate_detections([one([A], [0])], [pred([[0, 0, 10, 4]], [0.9], [0])], 1, iou_thresholds=(0.3, 0.5, 0.75))
    assert out["map_at"] == {"0.30": pytest.approx(1.0), "0.50": 0.0, "0.75": 0.0}


def test_iou_uses_continuous_coordinates() -> None:
    iou = box_iou(np.array([A]), np.array([A, [5, 0, 15, 10], FAR]))
    assert iou.tolist() == [[1.0, pytest.approx(1 / 3), 0.0]]
    assert box_iou(np.zeros((0, 4)), np.array([A])).shape == (0, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "pascal"}, "method"),
        ({"n_classes": 1}, "0-based"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    args = {"gts": [one([A], [1])], "preds": [pred([], [], [])], "n_classes": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        evaluate_detections(**args)
