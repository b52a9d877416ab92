"""From an uploaded image to a model answer, with the same pixels the model was trained on.

Classifier input is rebuilt with crop_patches' own code: the box grows by `context_margin` into a
window (`shape`, `edge` policies), the upload is decoded once, at the same reduced JPEG scale, the window
is cut, fitted to `patch_size` and turned upright as the photo's EXIF says; the patch then takes
the JPEG round trip crop_patches' files take (same quality), is resized bilinearly to the model's
`image_size` as the training loader does, and normalised with the model's own logged mean/std.
Without a box the whole image is fitted as whole-image tasks are (`crop_patches.whole_image`).

Confidences are calibrated: softmax(logits / T) with the temperature evaluate_model fitted on val.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from components.common.embedding import logits_and_embedding
from components.common.onnx_export import run_session
from components.common.preprocessing import Normalization, normalize
from components.crop_patches.config import CropConfig
from components.crop_patches.geometry import Window, box_window
from components.crop_patches.pixels import CropItem, ImageJob, decode_factor, render
from lesionops.serve.batching import on_model_thread
from lesionops.serve.models import Classifier, Detector

PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))


@dataclass(frozen=True)
class ClassifierAnswer:
    top: list[dict[str, Any]]  # [{"label", "confidence"}], best first
    embedding: np.ndarray


def crop_window(size: tuple[int, int], box: list[float] | None, crop: CropConfig) -> Window:
    """The stored-frame window crop_patches cuts for this box (the whole image without one)."""
    width, height = size
    if box is None:
        return Window(0, 0, width, height)
    # box_window takes labelImg corners (1-based, inclusive): xmin - 1 = x1
    return box_window(
        (box[0] + 1, box[1] + 1, box[2], box[3]), width, height, crop.context_margin, crop.shape, crop.edge
    )


def patch_scale(size: tuple[int, int], box: list[float] | None, crop: CropConfig) -> int:
    """How far the upload may be reduced while decoding: crop_patches' factor for this one window."""
    return decode_factor([crop_window(size, box, crop)], crop, box is None)


def patch_for(
    img: Image.Image, size: tuple[int, int], box: list[float] | None, orientation: int, crop: CropConfig
) -> Image.Image:
    """The `patch_size` RGB patch crop_patches would have written for this box (or whole image).

    `img` is the upload decoded at `patch_scale` (uploads.decode_image does it with crop_patches'
    own `decode_open`); crop_patches' `render` cuts, fits and turns the patch upright. The patch
    then takes the JPEG round trip `save` gives it on disk: training reads JPEG patches, and a
    patch that skipped the lossy round trip differs from them by up to 10-37 levels (mean 1-2) on
    the benchmark's photos. The round trip costs about 0.2-0.25 ms for a 64 px patch (2 cores),
    about 2 % of the bare model call: kept for train/serve parity.
    """
    width, height = size
    item = CropItem("serve", crop_window(size, box, crop), "")
    job = ImageJob("upload", width, height, orientation, (item,))
    patch = render(img, item, job, crop, box is None)
    if crop.image_format == "jpg":
        buf = BytesIO()
        patch.save(buf, format="JPEG", quality=crop.jpeg_quality)
        buf.seek(0)
        with Image.open(buf) as decoded:
            patch = decoded.convert("RGB")
    return patch


def to_batch(patch: Image.Image, model: Classifier) -> torch.Tensor:
    """1×3×S×S float, resized (bilinear, as train_model's decode_patch) and normalised by the same
    function as in training, with the model's logged statistics."""
    if patch.size != (model.image_size, model.image_size):
        patch = patch.resize((model.image_size, model.image_size), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(patch)).permute(2, 0, 1).unsqueeze(0)
    return normalize(x, Normalization(model.mean, model.std))


def calibrated(logits: torch.Tensor, temperature: float) -> np.ndarray:
    return torch.softmax(logits.double() / temperature, dim=1)[0].numpy()


def _threads(n: int) -> None:
    """OpenMP thread counts are per calling thread: set them on the model thread that runs the forward."""
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def run_classifier(model: Classifier, batch: torch.Tensor, threads: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, embedding), computed on the process's model thread (batching.on_model_thread). That
    one thread is also what keeps forwards one at a time: the embedding hook is registered on the
    shared module, so two concurrent forwards would capture each other's activations."""
    return on_model_thread(_classifier_forward, model, batch, threads)


def _classifier_forward(model: Classifier, batch: torch.Tensor, threads: int) -> tuple[torch.Tensor, torch.Tensor]:
    if model.onnx is not None:  # serve.backend: onnx (both outputs are graph outputs, no hook)
        return run_session(model.onnx, batch)
    if model.worker is not None:  # serve.model_process: the forward runs there, this thread only waits
        return model.worker.forward(model.key, model.module, batch)
    with torch.inference_mode():
        _threads(threads)
        return logits_and_embedding(model.module, batch)


def classify(
    model: Classifier, patch: Image.Image, top_k: int, threads: int = 0, max_batch: int = 1, wait_s: float = 0.0
) -> ClassifierAnswer:
    """Top-k calibrated classes and the embedding; the forward is shared with up to `max_batch - 1`
    concurrent requests (batching.MicroBatcher), each row the same as a forward of its own to 1e-5."""
    forward = partial(run_classifier, model, threads=threads)
    logits, embedding = model.batcher.run(to_batch(patch, model), forward, max_batch, wait_s)
    probs = calibrated(logits, model.temperature)
    order = np.argsort(-probs)[:top_k]
    top = [{"label": model.classes[i], "confidence": round(float(probs[i]), 6)} for i in order]
    return ClassifierAnswer(top, embedding[0].numpy())


def detect(model: Detector, img: Image.Image, threshold: float, threads: int = 0) -> list[dict[str, Any]]:
    """Boxes (xyxy, stored pixel frame) at or above `threshold`, best first."""
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255.0)
    out = on_model_thread(_detector_forward, model, x, threads)
    found = []
    for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist(), strict=True):
        index = int(label) - model.label_offset
        if score >= threshold and 0 <= index < len(model.classes):
            found.append(
                {
                    "label": model.classes[index],
                    "score": round(float(score), 6),
                    "box": [round(float(v), 2) for v in box],
                }
            )
    return sorted(found, key=lambda d: -d["score"])


def _detector_forward(model: Detector, x: torch.Tensor, threads: int) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        _threads(threads)
        out: dict[str, torch.Tensor] = model.module([x])[0]
        return out


def annotate(img: Image.Image, detections: list[dict[str, Any]], classes: tuple[str, ...]) -> str:
    """The image with its boxes drawn, as a PNG data URL (what seeds 000/003 return)."""
    canvas = img.copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(img.size) / 300))
    for det in detections:
        colour = PALETTE[classes.index(det["label"]) % len(PALETTE)] if det["label"] in classes else PALETTE[0]
        x1, y1, x2, y2 = det["box"]
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        text = f"{det['label']} {det['score']:.2f}"
        tx, ty = x1 + width, max(0.0, y1 - 12)
        draw.rectangle(draw.textbbox((tx, ty), text), fill=colour)
        draw.text((tx, ty), text, fill=(255, 255, 255))
    buf = BytesIO()
    canvas.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
