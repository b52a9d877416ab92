"""monitor_drift end to end: store mode on a real SQLite serving store, folder mode on shifted streams."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.image_stats import COLUMNS, features_frame, list_images
from components.common.io import read_json
from components.common.store import Feedback, Prediction, Review, Store, StoredImage
from components.common.tracking import TrackingConfig
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.core import run, run_store
from lesionops.synth.shift import ShiftConfig, write_stream
from tests.unit.test_drift_window import T0, reference, rows

CFG = MonitorConfig(min_window=30, window=200, cooldown_hours=0)


def add_predictions(store: Store, frame: pd.DataFrame, start: int) -> None:
    """Store rows as serving does: every feature the frame has, a missing (NaN) one left out."""
    for i, r in enumerate(frame.itertuples(index=False)):
        sha = f"{start + i:064x}"
        store.add_prediction(
            Prediction(
                prediction_id=f"p{start + i:06d}",
                created_at=T0 + timedelta(minutes=start + i),
                kind="classify",
                model_name="es_skin_classifier",
                model_version=str(r.model_version),
                image=StoredImage(sha, f"{sha[:2]}/{sha}.jpg", 640, 480),
                box=None,
                outputs={"top": [{"label": r.predicted_class, "confidence": r.confidence}]},
                predicted_class=r.predicted_class,
                confidence=float(r.confidence),
                features={f: float(getattr(r, f)) for f in COLUMNS if np.isfinite(getattr(r, f, np.nan))},
                embedding=np.asarray(r.embedding, np.float32),
            )
        )


def add_reviews(store: Store, n: int, start: int, when: int) -> None:
    for i in range(n):
        sha = f"{start + i:064x}"
        fid = f"f{start + i:06d}"
        store.add_feedback(
            Feedback(
                fid,
                T0 + timedelta(minutes=when),
                None,
                StoredImage(sha, f"{sha}.jpg", 64, 64),
                "eczema",
                None,
                None,
                "psoriasis",
            )
        )
        store.review(fid, Review("accepted", "eczema", None, "dr", T0 + timedelta(minutes=when + i)), lambda _r: None)


@pytest.fixture()
def ref_dir(tmp_path: Path) -> Path:
    ref = reference()
    folder = tmp_path / "reference"
    folder.mkdir()
    ref.images.to_parquet(folder / "images.parquet")
    ref.model.assign(embedding=[list(e) for e in ref.model.embedding]).to_parquet(folder / "model.parquet")
    return folder


def test_store_windows_do_not_overlap_and_drift_persists(tmp_path: Path, ref_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    history, store = tmp_path / "history.json", Store(url)

    def monitor(i: int, minutes: int) -> dict:
        return run_store(
            CFG,
            url,
            tmp_path / f"out{i}",
            reference_dir=ref_dir,
            history_file=history,
            now=T0 + timedelta(minutes=minutes),
        )

    try:
        add_predictions(store, rows(150, 20), 0)
        first = monitor(1, 200)
        assert first["drift"]["verdict"] == "no_drift" and first["drift"]["counts"]["usable"] == 150

        add_predictions(store, rows(20, 21), 150)  # too few new predictions: not consumed
        second = monitor(2, 400)
        assert second["drift"]["verdict"] == "insufficient_data"

        add_predictions(store, rows(150, 22, emb_shift=0.8), 170)
        third = monitor(3, 600)  # the 20 left over + 150 shifted
        assert third["drift"]["counts"]["current_images"] == 170
        assert third["drift"]["verdict"] == "drift" and not third["decision"]["retrain"]

        add_predictions(store, rows(150, 23, emb_shift=0.8), 320)
        add_reviews(store, 3, 0, when=700)
        fourth = monitor(4, 800)
        assert fourth["decision"]["retrain"] and fourth["decision"]["trigger"] == "drift"
        assert fourth["drift"]["counts"]["current_images"] == 150  # only what came after the third window

        add_reviews(store, 2, 10, when=900)  # accepted after the retrain: counted from it
        fifth = monitor(5, 1000)
        assert read_json(tmp_path / "out5" / "decision.json")["accepted_feedback"] == 2
        assert fifth["drift"]["verdict"] == "insufficient_data"  # no new predictions
    finally:
        store.close()
    records = read_json(history)
    assert [r["verdict"] for r in records] == ["no_drift", "insufficient_data", "drift", "drift", "insufficient_data"]
    assert records[0]["window_end"] == records[1]["window_end"]  # the small window was not consumed
    assert all(r["mode"] == "store" and r["reasons"] for r in records)


def test_a_darker_skinned_clinic_is_skin_tone_drift_from_the_store(tmp_path: Path, ref_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    store, history = Store(url), tmp_path / "history.json"
    try:
        add_predictions(store, rows(150, 30, ita=0.0), 0)  # reference median ITA 35°: intermediate skin
        out = run_store(CFG, url, tmp_path / "out", reference_dir=ref_dir, history_file=history, now=T0)
        add_predictions(store, rows(150, 31).assign(ita=np.nan), 150)  # stored before ITA was measured
        skipped = run_store(CFG, url, tmp_path / "old", reference_dir=ref_dir, history_file=history, now=T0)
    finally:
        store.close()
    assert out["drift"]["verdict"] == "drift" and "skin_tone" in out["drift"]["drifted_checks"]
    tone = read_json(tmp_path / "out" / "decision.json")["skin_tone"]
    assert tone["verdict"] == "drift" and "median ITA" in tone["reason"]
    assert out["drift"]["skin_tone"]["current_median_ita"] < 10 < out["drift"]["skin_tone"]["reference_median_ita"]
    assert skipped["drift"]["skin_tone"]["verdict"] == "skipped"  # the 150 newest have no tone


def test_feedback_threshold_from_the_store_retrains(tmp_path: Path, ref_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    store = Store(url)
    try:
        add_predictions(store, rows(60, 30), 0)
        add_reviews(store, 5, 0, when=100)
    finally:
        store.close()
    result = run_store(
        replace(CFG, retrain_feedback_threshold=5),
        url,
        tmp_path / "out",
        reference_dir=ref_dir,
        now=T0 + timedelta(hours=5),
    )
    assert result["decision"]["retrain"] and result["decision"]["trigger"] == "feedback"


def test_store_mode_without_a_champion_has_no_reference(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    tracking = TrackingConfig(
        tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        artifact_root=str(tmp_path / "mlruns" / "artifacts"),
        registered_model="nobody",
    )
    result = run_store(CFG, url, tmp_path / "out", tracking=tracking, now=T0)
    assert result["drift"]["verdict"] == "no_reference" and not result["decision"]["retrain"]
    assert "no champion yet" in result["drift"]["reference"]
    assert any("no reference statistics" in r for r in result["decision"]["reasons"])


@pytest.fixture(scope="module")
def stream_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reference folder from an unshifted stream, with each photo's patient (as evaluate_model
    writes images.parquet: the calibration windows are whole patients)."""
    root = tmp_path_factory.mktemp("ref")
    write_stream(root / "stream", ShiftConfig("none", 1.0, 120, seed=1, width=160, height=120))
    table = features_frame(list_images(root / "stream" / "images"), 256)
    stream = pd.read_csv(root / "stream" / "stream.csv")
    patient = dict(zip(stream.file, stream.patient, strict=True))
    frame = table.frame.assign(patient_id=[patient[f"images/{Path(p).name}"] for p in table.frame.path])
    frame.to_parquet(root / "images.parquet")
    return root


@pytest.mark.parametrize(
    "shift, seed, verdict, alert",
    [("none", 2, "no_drift", False), ("lighting", 3, "drift", False), ("wrong_modality", 4, "no_drift", True)],
)
def test_folder_mode_on_shifted_streams(
    stream_reference: Path, tmp_path: Path, shift: str, seed: int, verdict: str, alert: bool
) -> None:
    write_stream(tmp_path / "current", ShiftConfig(shift, 1.0, 80, seed=seed, width=160, height=120))
    result = run(CFG, stream_reference, None, tmp_path / "current", tmp_path / "out", now=T0)
    assert result["drift"]["verdict"] == verdict
    assert result["decision"]["alert"] is alert and not result["decision"]["retrain"]
    assert result["drift"]["counts"]["current_files"] == 80
