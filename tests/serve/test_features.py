"""Drift features measured after the answer: the server's feature worker fills every row, with the
values the request used to compute inline (`read_features` of the stored image), finishes what a
previous run left pending when it starts, and loses nothing when its queue is full."""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from components.common.image_stats import read_features
from components.common.store import Prediction, Store, StoredImage, utc_now
from lesionops.serve.feature_process import FeatureProcess, FeatureProcessError
from lesionops.serve.features import FeatureWorker, _processes
from lesionops.serve.uploads import decode_image, store_image
from tests.serve.fixtures import ServeSetup, build_serving, filled, image_bytes, serve_in_thread


def _inline(path: Path, max_side: int) -> dict[str, float]:
    """What /classify stored before the worker existed: read_features of the stored file, finite values."""
    return {k: v for k, v in read_features(path, max_side).items() if math.isfinite(v)}


def _pending_row(store: Store, image: StoredImage) -> str:
    """A committed prediction whose features were never measured (as a kill leaves it)."""
    prediction_id = uuid.uuid4().hex
    store.add_prediction(
        Prediction(prediction_id, utc_now(), "classify", "clf", "1", image, None, {"top": []}, "x", 0.5, None)
    )
    return prediction_id


def _stored(serving: ServeSetup, seed: int) -> StoredImage:
    return store_image(Path(serving.cfg.image_dir), decode_image(image_bytes(seed=seed), 10**7))


def test_the_worker_fills_a_classified_row_as_the_inline_path_did(client: httpx.Client, serving: ServeSetup) -> None:
    r = client.post(
        "/classify", files={"file": ("p.jpg", image_bytes(seed=3), "image/jpeg")}, data={"box": "5,5,90,80"}
    )
    assert r.status_code == 200, r.text
    store = Store(serving.cfg.store_url)
    assert store.get_prediction(r.json()["prediction_id"]) is not None  # committed before the answer
    row = filled(store, r.json()["prediction_id"])
    expected = _inline(Path(serving.cfg.image_dir) / row["image_path"], serving.cfg.feature_max_side)
    assert row["features"] == expected and "ita" in row["features"]
    assert row["prediction_id"] in set(store.recent_predictions(1000).prediction_id)


def test_rows_left_pending_are_finished_when_the_server_starts(tmp_path: Path) -> None:
    serving = build_serving(tmp_path, detector=False, feature_rescan_s=3600)  # only the start-up scan
    store = Store(serving.cfg.store_url)
    images = [_stored(serving, seed) for seed in (1, 2, 3)]
    ids = [_pending_row(store, image) for image in images]
    gone = _pending_row(store, StoredImage("cd" * 32, "cd/gone.jpg", 160, 120))  # retention deleted it
    assert len(store.pending_features(100)) == 4 and store.recent_predictions(100).empty

    with serve_in_thread(serving.app()):
        rows = [filled(store, i) for i in ids]
        lost = filled(store, gone)
    for row, image in zip(rows, images, strict=True):
        assert row["features"] == _inline(Path(serving.cfg.image_dir) / image.path, 256)
    assert lost["features"] == {}  # nothing left to measure: NaN in the drift frame, never pending for ever
    assert store.pending_features(100) == []
    assert set(store.recent_predictions(100).prediction_id) == {*ids, gone}


def test_rows_that_do_not_fit_in_the_queue_are_filled_from_the_store(tmp_path: Path) -> None:
    serving = build_serving(tmp_path, classifier=False, detector=False, users=False)
    store = Store(serving.cfg.store_url)
    worker = FeatureWorker(store, Path(serving.cfg.image_dir), 256, queue_size=1, rescan_s=3600)
    worker.start()  # its start-up scan finds nothing; the next scan would be an hour away
    try:
        image = _stored(serving, 5)
        ids = [_pending_row(store, image) for _ in range(20)]
        for i in ids:  # 20 rows into a queue of 1, faster than one row is measured: most overflow
            worker.submit(i, image.path)
        rows = [filled(store, i) for i in ids]
    finally:
        worker.stop()
    expected = _inline(Path(serving.cfg.image_dir) / image.path, 256)
    assert all(row["features"] == expected for row in rows)


def test_a_killed_feature_process_is_replaced_and_its_rows_are_still_filled(
    client: httpx.Client, serving: ServeSetup
) -> None:
    store = Store(serving.cfg.store_url)

    def classify(seed: int) -> str:
        r = client.post("/classify", files={"file": ("p.jpg", image_bytes(seed=seed), "image/jpeg")})
        assert r.status_code == 200, r.text
        return str(r.json()["prediction_id"])

    filled(store, classify(11))
    child = _processes[serving.cfg.feature_nice, serving.cfg.feature_idle]  # the server's feature process
    assert child.alive() and child.pid != os.getpid()
    os.kill(child.pid, signal.SIGKILL)
    ids = [classify(seed) for seed in (12, 13)]
    for prediction_id in ids:  # the first batch after the kill fails; the rescan measures it again
        row = filled(store, prediction_id)
        assert row["features"] == _inline(Path(serving.cfg.image_dir) / row["image_path"], serving.cfg.feature_max_side)
    assert _processes[serving.cfg.feature_nice, serving.cfg.feature_idle].pid != child.pid  # replaced


def test_a_feature_process_that_cannot_start_is_refused_with_its_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", shutil.which("false"))  # a child that exits at once
    with pytest.raises(FeatureProcessError, match=r"ended \(exit code 1\)"):
        FeatureProcess(0, False)
