"""Claim: the acupoint preset's anchors (`anchor_sizes: [8, 16, 32, 64, 128]`, `aspect_ratios: [1.0]`)
cover its 8–20 px points, and torchvision's defaults (32 … 512 px, ratios 0.5/1/2) do not.

Faster R-CNN's RPN learns from anchors: an anchor is a positive only at IoU ≥ 0.7 with a ground
truth box (torchvision's `fg_iou_thresh`), and a box with no such anchor is left to one
"low-quality" match. So the best-anchor IoU of every ground-truth box, on the very image sizes and
feature maps the detector sees, is what decides whether small points can be learnt at all — and it
is deterministic and cheap, unlike training two detectors from scratch on a CPU.

Generates acupoint photos with the preset's generator, runs the real ingest → validate →
crop_patches (detection export) stages, builds the preset's detector with each anchor setting,
and for every training box reports the IoU of its best anchor (after the detector's own resize).

    .venv/bin/python benchmarks/detector_anchors.py [--images 120] [--arch fasterrcnn_resnet50_fpn] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchvision.models.detection.image_list import ImageList  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from components.common.detector import load_image, load_split  # noqa: E402
from components.common.params import section  # noqa: E402
from components.common.settings import deep_merge, load_preset
from components.common.task import load_task  # noqa: E402
from components.common.tracking import TrackingConfig  # noqa: E402
from components.crop_patches.config import CropConfig  # noqa: E402
from components.crop_patches.core import run as crop  # noqa: E402
from components.ingest_data.config import IngestConfig  # noqa: E402
from components.ingest_data.core import run as ingest  # noqa: E402
from components.train_detector.config import DetectorConfig  # noqa: E402
from components.train_detector.core import build_detector  # noqa: E402
from components.validate_annotations.config import ValidateConfig  # noqa: E402
from components.validate_annotations.core import run as validate  # noqa: E402
from lesionops.presets import generate, synth_settings  # noqa: E402

RPN_POSITIVE_IOU = 0.7  # torchvision FasterRCNN rpn_fg_iou_thresh


def _params(tmp: Path) -> dict[str, Any]:
    repo = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    local = {
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}", "artifact_root": str(tmp / "artifacts")},
        "crop_patches": {"detection": {"enabled": True}},
    }
    return deep_merge(load_preset("acupoint", deep_merge(repo, local)), local)


@torch.no_grad()
def best_anchor_ious(cfg: DetectorConfig, n_classes: int, patch_dir: Path, classes: tuple[str, ...]) -> np.ndarray:
    """IoU of each training box with its best anchor, in the detector's resized frame."""
    model = build_detector(cfg, n_classes).eval()
    out = []
    for item in load_split(patch_dir, "train", classes).items:
        if not len(item.boxes):
            continue
        target = {"boxes": torch.as_tensor(item.boxes, dtype=torch.float32)}
        images, targets = model.transform([load_image(item)], [target])
        features = list(model.backbone(images.tensors).values())
        anchors = model.rpn.anchor_generator(ImageList(images.tensors, images.image_sizes), features)[0]
        out.append(box_iou(targets[0]["boxes"], anchors).max(dim=1).values.numpy())
    return np.concatenate(out)


def _row(name: str, ious: np.ndarray) -> dict[str, float]:
    return {
        "setting": name,
        "boxes": int(len(ious)),
        "mean_best_iou": float(ious.mean()),
        "share_iou_ge_0.5": float((ious >= 0.5).mean()),
        "share_iou_ge_0.7": float((ious >= RPN_POSITIVE_IOU).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--arch", default=None, help="override the preset's train_detector.arch")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work)
        doc = _params(tmp)
        task, tracking = load_task(doc), section(doc, "mlflow", TrackingConfig)
        generate(
            dataclasses.replace(synth_settings(doc), n_images=args.images), task.classes, tmp / "data", progress=False
        )
        ingest(section(doc, "ingest_data", IngestConfig), tmp / "data", tmp / "ingest")
        validate(section(doc, "validate_annotations", ValidateConfig), task, tmp / "ingest", tmp / "validate", tracking)
        crop(section(doc, "crop_patches", CropConfig), task, tmp / "validate", tmp / "data", tmp / "crop")
        preset = section(doc, "train_detector", DetectorConfig)
        preset = dataclasses.replace(preset, arch=args.arch) if args.arch else preset
        default = dataclasses.replace(preset, anchor_sizes=None, aspect_ratios=(0.5, 1.0, 2.0))
        rows = [
            _row(
                "default 32-512 px, ratios 0.5/1/2",
                best_anchor_ious(default, len(task.classes), tmp / "crop", task.classes),
            ),
            _row(
                f"preset {list(preset.anchor_sizes or [])} px, ratios {list(preset.aspect_ratios)}",
                best_anchor_ious(preset, len(task.classes), tmp / "crop", task.classes),
            ),
        ]
    print(
        f"acupoint train boxes, {preset.arch}, detector input {preset.min_size}-{preset.max_size} px "
        f"({args.images} photos)"
    )
    print(f"{'anchors':<44}{'boxes':>7}{'mean best IoU':>15}{'IoU>=0.5':>10}{'IoU>=0.7':>10}")
    for r in rows:
        print(
            f"{r['setting']:<44}{r['boxes']:>7}{r['mean_best_iou']:>15.3f}{r['share_iou_ge_0.5']:>10.1%}"
            f"{r['share_iou_ge_0.7']:>10.1%}"
        )
    print(
        f"boxes with an RPN-positive anchor (IoU >= {RPN_POSITIVE_IOU}): "
        f"{rows[0]['share_iou_ge_0.7']:.1%} → {rows[1]['share_iou_ge_0.7']:.1%}"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
