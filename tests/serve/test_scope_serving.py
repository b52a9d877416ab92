"""serve_scope over real HTTP: a photo the classifier cannot answer gets its reason and no top-k,
is stored with the model's answer and the verdict, and is counted; an ordinary photo is answered.

The reference the scope is fitted on is the champion's own `reference/model.parquet` on its
training run (as evaluate_model logs it), built here from the served model's embeddings of
photos made like the ordinary ones, through serving's own patch and batch functions."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from components.common.drift_reference import ARTIFACT_PATH, MODEL_TABLE
from components.common.embedding import logits_and_embedding
from components.common.scope import BRIGHTNESS, SATURATION, ScopeConfig, patch_stats
from components.common.store import Store
from lesionops.serve.app import create_app
from lesionops.serve.inference import patch_for, patch_scale, to_batch
from lesionops.serve.models import load_classifier
from lesionops.serve.uploads import decode_image
from tests.serve.fixtures import TOKEN, ServeSetup, build_serving, image_bytes, serve_in_thread

N_REFERENCE = 80


def _log_reference(setup: ServeSetup) -> None:
    """reference/model.parquet on the champion's run: embeddings of N_REFERENCE ordinary photos."""
    uri = setup.tracking.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(setup.tracking.registered_model, "champion")
    model = load_classifier(client, uri, setup.tracking.registered_model, version)
    rows, crop = [], setup.crop
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(N_REFERENCE):
            upload = decode_image(image_bytes(seed=100 + i), 10**7, scale=lambda w, h: patch_scale((w, h), None, crop))
            patch = patch_for(upload.image, upload.size, None, upload.orientation, crop)
            with torch.inference_mode():
                _, emb = logits_and_embedding(model.module, to_batch(patch, model))
            brightness, saturation = patch_stats(np.asarray(patch))
            rows.append(
                {
                    "split": "val" if i % 2 else "test",
                    "label": model.classes[i % len(model.classes)],
                    "embedding": emb[0].numpy(),
                    BRIGHTNESS: brightness[0],
                    SATURATION: saturation[0],
                }
            )
        folder = Path(tmp) / ARTIFACT_PATH
        folder.mkdir()
        pd.DataFrame(rows).to_parquet(folder / MODEL_TABLE)
        client.log_artifacts(version.run_id, str(folder), ARTIFACT_PATH)


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServeSetup]]:
    setup = build_serving(tmp_path_factory.mktemp("scope"))
    mlflow.set_tracking_uri(setup.tracking.tracking_uri)
    _log_reference(setup)
    app = create_app(setup.cfg, setup.tracking, setup.task, crop=setup.crop, scope=ScopeConfig(false_rejection=0.05))
    with serve_in_thread(app) as url:
        yield url, setup


def _jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _classify(url: str, data: bytes, route: str = "/classify") -> dict:
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        r = client.post(route, files={"file": ("p.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    return r.json()


def test_an_ordinary_photo_is_answered(scoped: tuple[str, ServeSetup]) -> None:
    url, _ = scoped
    answer = _classify(url, image_bytes(seed=101))  # a val photo of the reference
    assert answer["scope"]["in_scope"] and answer["scope"]["reasons"] == []
    assert answer["scope"]["distance"] <= answer["scope"]["threshold"] and len(answer["top"]) == 2


def test_a_grey_film_is_refused_stored_and_counted(scoped: tuple[str, ServeSetup]) -> None:
    url, setup = scoped
    film = np.repeat(np.linspace(20, 230, 160, dtype=np.uint8)[None, :, None], 120, axis=0).repeat(3, axis=2)
    answer = _classify(url, _jpeg(film))
    assert answer["scope"]["in_scope"] is False and "grey" in answer["scope"]["reasons"] and answer["top"] == []
    store = Store(setup.cfg.store_url)
    try:
        row = store.get_prediction(answer["prediction_id"])
    finally:
        store.close()
    assert row is not None and row["outputs"]["scope"] == answer["scope"]
    assert len(row["outputs"]["top"]) == 2  # the model's own answer is kept for audit
    metrics = httpx.get(f"{url}/metrics").text
    assert 'lesionops_out_of_scope_total{reason="grey"} 1.0' in metrics


def test_a_near_black_photo_is_refused(scoped: tuple[str, ServeSetup]) -> None:
    url, _ = scoped
    dark = (np.asarray(Image.open(io.BytesIO(image_bytes(seed=3)))) * 0.04).astype(np.uint8)
    answer = _classify(url, _jpeg(dark))
    assert "near_black" in answer["scope"]["reasons"] and answer["top"] == []


def test_a_photo_far_from_every_class_is_refused_by_its_embedding(scoped: tuple[str, ServeSetup]) -> None:
    url, _ = scoped
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (120, 160, 3)).astype(np.uint8)  # bright, colourful, nothing like a photo
    answer = _classify(url, _jpeg(noise))
    assert answer["scope"]["reasons"] == ["unfamiliar"] and answer["top"] == []
    assert answer["scope"]["distance"] > answer["scope"]["threshold"]


def test_detect_gets_the_acquisition_checks(scoped: tuple[str, ServeSetup]) -> None:
    """/detect: near-black and grey (the classifier's reference is colour), no embedding check."""
    url, _ = scoped
    film = np.repeat(np.linspace(20, 230, 160, dtype=np.uint8)[None, :, None], 120, axis=0).repeat(3, axis=2)
    refused = _classify(url, _jpeg(film), "/detect")
    assert refused["scope"]["reasons"] == ["grey"] and refused["detections"] == []
    answered = _classify(url, image_bytes(seed=4), "/detect")
    assert answered["scope"]["in_scope"] and answered["scope"]["reasons"] == []
    assert answered["scope"].get("distance") is None  # no embedding check on /detect
