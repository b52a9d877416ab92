"""Serving feeds the classifier exactly what training fed it.

The reference path is the training code itself: crop_patches' worker (`crop_image`) writes the
patch file, train_model's loader (`decode_patch`) reads it, components/common/preprocessing's `normalize`
scales it with the statistics the champion logged (the fixture logs a non-ImageNet mean/std, so a
server falling back to ImageNet's would fail), the champion is loaded the way evaluate_model loads it,
and the calibrated softmax uses the logged temperature. The API's
confidences and the stored embedding must match that to float precision — for a boxed region and
for a whole image, on a photo stored as-is and one carrying an EXIF rotation.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from components.common.classifier.data import decode_patch
from components.common.embedding import logits_and_embedding
from components.common.preprocessing import IMAGENET, normalize
from components.common.store import Store
from components.crop_patches.geometry import Window, box_window
from components.crop_patches.pixels import CropItem, ImageJob, crop_image
from components.evaluate_model.core import champion_model
from tests.serve.fixtures import ServeSetup, image_bytes

W, H = 200, 150


def _photo(orientation: int) -> bytes:
    with Image.open(io.BytesIO(image_bytes(W, H, seed=7))) as img:
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90, exif=exif.tobytes())
        return buf.getvalue()


@pytest.mark.parametrize("orientation", [1, 6])
@pytest.mark.parametrize(
    "box", [[20.0, 30.0, 110.0, 100.0], [150.0, 5.0, 199.0, 40.0], None], ids=["inside", "at-the-edge", "whole-image"]
)
def test_api_matches_the_training_pipeline(
    client: httpx.Client, serving: ServeSetup, tmp_path: Path, orientation: int, box: list[float] | None
) -> None:
    data = _photo(orientation)
    form = {"box": ",".join(f"{v:g}" for v in box)} if box else {}
    r = client.post("/classify", files={"file": ("p.jpg", data, "image/jpeg")}, data=form)
    assert r.status_code == 200, r.text
    body = r.json()

    source, patch = tmp_path / "photo.jpg", tmp_path / "patch.jpg"
    source.write_bytes(data)
    crop = serving.crop
    window = (
        Window(0, 0, W, H)
        if box is None
        else box_window((box[0] + 1, box[1] + 1, box[2], box[3]), W, H, crop.context_margin, crop.shape, crop.edge)
    )
    job = ImageJob(str(source), W, H, orientation, (CropItem("p", window, str(patch)),))
    assert crop_image(job, crop, whole=box is None)[2] is None
    champion = champion_model(serving.tracking, "champion")
    assert champion is not None and champion.version == body["model"]["version"] and champion.image_size is not None
    assert champion.norm != IMAGENET
    model, size = champion.model, champion.image_size
    batch = normalize(torch.from_numpy(decode_patch(patch, size)).permute(2, 0, 1).unsqueeze(0), champion.norm)
    logits, embedding = logits_and_embedding(model, batch)
    probs = torch.softmax(logits.double() / 1.5, dim=1)[0].numpy()  # the fixture logs temperature 1.5
    classes = list(serving.task.classes)
    expected = sorted(((classes[i], float(p)) for i, p in enumerate(probs)), key=lambda t: -t[1])
    assert [t["label"] for t in body["top"]] == [label for label, _ in expected]
    assert [t["confidence"] for t in body["top"]] == pytest.approx([p for _, p in expected], abs=1e-5)
    stored = Store(serving.cfg.store_url).get_prediction(body["prediction_id"])
    assert stored is not None
    np.testing.assert_allclose(stored["embedding"], embedding[0].numpy(), rtol=1e-5, atol=1e-6)
