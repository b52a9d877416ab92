"""The detection export (COCO JSON per split + raw photos) as torchvision detection samples, and a
detector's predictions on it: what train_detector learns from and evaluate_detector scores on.

Images are decoded on demand, batch by batch: raw photos are large, so unlike the patch classifier
nothing is held in memory. Boxes stay in the stored pixel frame (no EXIF turn), which is the frame
labelImg drew them in and the one crop_patches' `width`/`height` describe; a mismatch is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from components.common.errors import DataError
from components.common.images import load_rgb
from components.common.io import read_json

DETECTION_DIR = "detection"
CHECKPOINT = "detector.pt"  # train_detector's outputs that evaluate_detector reads
SUMMARY = "train_summary.json"


@dataclass(frozen=True)
class DetectionItem:
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # N×4 float32, xyxy, 0-based continuous pixel coordinates
    labels: np.ndarray  # N int64, 1-based category ids (0 is torchvision's background)


@dataclass(frozen=True)
class DetectionSplit:
    annotations: Path
    items: tuple[DetectionItem, ...]

    def ground_truth(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image (boxes, 0-based labels), the form detection_metrics expects."""
        return [(item.boxes.astype(np.float64), item.labels - 1) for item in self.items]


def annotations_path(patch_dir: Path, split: str) -> Path:
    return patch_dir / DETECTION_DIR / f"annotations_{split}.json"


def _images_root(doc: dict[str, Any], det_dir: Path, source: Path) -> Path:
    root = (doc.get("info") or {}).get("images_root")
    if not root:
        raise DataError(source, "info.images_root is missing (where the photos are)")
    path = Path(root)
    return path if path.is_absolute() else det_dir / path


def _check_categories(doc: dict[str, Any], classes: tuple[str, ...], source: Path) -> None:
    found = [(c.get("id"), c.get("name")) for c in doc.get("categories", [])]
    expected = [(i + 1, name) for i, name in enumerate(classes)]
    if found != expected:
        raise DataError(source, f"categories {found} do not match task.classes as ids 1..n {expected}")


def load_split(patch_dir: Path, split: str, classes: tuple[str, ...]) -> DetectionSplit:
    """Read `detection/annotations_<split>.json`; images without boxes are kept as negatives."""
    source = annotations_path(patch_dir, split)
    if not source.is_file():
        raise DataError(source, "not found; run crop_patches with crop_patches.detection.enabled")
    doc = read_json(source)
    _check_categories(doc, classes, source)
    root = _images_root(doc, source.parent, source)
    boxes: dict[int, list[list[float]]] = {int(img["id"]): [] for img in doc.get("images", [])}
    labels: dict[int, list[int]] = {key: [] for key in boxes}
    for ann in doc.get("annotations", []):
        image_id = int(ann["image_id"])
        x, y, w, h = (float(v) for v in ann["bbox"])
        if image_id not in boxes:
            raise DataError(source, f"annotation {ann.get('id')} points at unknown image_id {image_id}")
        if not (w > 0 and h > 0) or not 1 <= int(ann["category_id"]) <= len(classes):
            raise DataError(
                source,
                f"annotation {ann.get('id')}: bbox {ann['bbox']} / category "
                f"{ann['category_id']} (need w, h > 0 and a category in 1..{len(classes)})",
            )
        boxes[image_id].append([x, y, x + w, y + h])
        labels[image_id].append(int(ann["category_id"]))
    items = tuple(
        DetectionItem(
            path=root / img["file_name"],
            width=int(img["width"]),
            height=int(img["height"]),
            boxes=np.asarray(boxes[int(img["id"])], dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels[int(img["id"])], dtype=np.int64),
        )
        for img in sorted(doc.get("images", []), key=lambda i: int(i["id"]))
    )
    return DetectionSplit(source, items)


def load_image(item: DetectionItem) -> torch.Tensor:
    """3×H×W float in [0, 1] (torchvision detectors normalise and resize internally)."""
    img = load_rgb(item.path)
    if img.size != (item.width, item.height):
        raise DataError(
            item.path,
            f"decoded size {img.size} differs from the annotation's "
            f"{(item.width, item.height)}; boxes would be misplaced",
        )
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div_(255.0)


def sample(item: DetectionItem, flip: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training sample; `flip` mirrors image and boxes (lesions have no handedness)."""
    image = load_image(item)
    boxes = torch.from_numpy(item.boxes.copy())
    if flip:
        image = image.flip(-1)
        boxes = torch.stack([item.width - boxes[:, 2], boxes[:, 1], item.width - boxes[:, 0], boxes[:, 3]], 1)
    return image, {"boxes": boxes.reshape(-1, 4), "labels": torch.from_numpy(item.labels.copy())}


def batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> list[list[int]]:
    """Index batches, shuffled when a generator is given (training), in order otherwise."""
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


@torch.no_grad()
def predict(
    model: nn.Module, split: DetectionSplit, device: torch.device, batch_size: int = 4
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image (boxes xyxy, scores, 0-based labels) in float32 (no autocast: bf16 would round
    box corners by pixels). The caller puts the model in eval mode."""
    out = []
    for idx in batches(len(split.items), batch_size):
        for det in model([load_image(split.items[i]).to(device) for i in idx]):
            out.append(
                (
                    det["boxes"].float().cpu().numpy(),
                    det["scores"].float().cpu().numpy(),
                    det["labels"].cpu().numpy() - 1,
                )
            )
    return out
