"""The store's contract with the drift monitor, on a real SQLite file and on a real PostgreSQL server
(pgserver): columns, order, filters, WAL, upgrades, and several processes opening one database at once."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from components.common.errors import ConfigError
from components.common.image_stats import FEATURES
from components.common.store import Feedback, Prediction, Review, Store, StoredImage

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OPENERS = 8  # server processes starting at the same moment
IMAGE = StoredImage("ab" * 32, "ab/abab.jpg", 160, 120)


def _prediction(i: int, kind: str = "classify", label: str = "psoriasis") -> Prediction:
    features = {f: float(i) for f in FEATURES}
    embedding = np.arange(4, dtype=np.float32) + i if kind == "classify" else None
    return Prediction(
        f"p{i:03d}",
        T0 + timedelta(minutes=i),
        kind,
        "clf",
        str(1 + i // 5),
        IMAGE,
        None,
        {"top": []},
        label,
        0.5 + i / 100,
        features,
        embedding,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests on both dialects the serving store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'deep' / 'serve.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture()
def store(store_url: str) -> Store:
    s = Store(store_url)
    for i in range(10):
        s.add_prediction(_prediction(i))
    s.add_prediction(_prediction(10, kind="detect", label="lichen_planus"))
    return s


def test_sqlite_is_durable_by_configuration(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'serve.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_recent_predictions(store: Store) -> None:
    frame = store.recent_predictions(3)
    assert list(frame.columns) == [
        "prediction_id",
        "created_at",
        "kind",
        "model_version",
        "predicted_class",
        "confidence",
        *FEATURES,
        "ita",
        "embedding",
    ]
    assert list(frame.prediction_id) == ["p007", "p008", "p009"]  # the latest 3, oldest first
    assert str(frame.created_at.dt.tz) == "UTC" and frame.created_at.iloc[0] == T0 + timedelta(minutes=7)
    assert frame.embedding.iloc[0] == [7.0, 8.0, 9.0, 10.0] and frame.brightness.iloc[0] == 7.0
    assert frame.confidence.dtype == float and list(frame.model_version) == ["2", "2", "2"]
    assert frame.ita.isna().all()  # stored without a skin tone (older rows, grey films): NaN, not an error
    since = store.recent_predictions(100, since=T0 + timedelta(minutes=8))
    assert list(since.prediction_id) == ["p008", "p009"]
    naive = store.recent_predictions(100, since=(T0 + timedelta(minutes=8)).replace(tzinfo=None))
    assert list(naive.prediction_id) == ["p008", "p009"]
    detect = store.recent_predictions(10, kind="detect")
    assert list(detect.prediction_id) == ["p010"] and detect.embedding.iloc[0] is None
    assert store.recent_predictions(5, kind="nothing").empty


def _feedback(store: Store, i: int, model_label: str | None) -> str:
    fid = f"f{i:03d}"
    store.add_feedback(Feedback(fid, T0 + timedelta(hours=i), f"p{i:03d}", IMAGE, "psoriasis", None, None, model_label))
    return fid


def test_the_drift_window_skips_rows_whose_features_are_pending(store: Store) -> None:
    """A row committed before its features were measured is not in the monitor's window (it would
    enter with NaN statistics) until the feature worker has filled it; then it is, with its values."""
    pending = dataclasses.replace(_prediction(11), features=None)
    store.add_prediction(pending)
    row = store.get_prediction("p011")
    assert row is not None and row["features_pending"] is True and row["features"] == {}
    assert store.pending_features(10) == [("p011", IMAGE.path)]
    assert "p011" not in set(store.recent_predictions(100).prediction_id)
    assert store.recent_predictions(3).prediction_id.tolist() == ["p007", "p008", "p009"]  # latest finished rows

    assert store.fill_features({"p011": {"brightness": 42.0}}) == 1
    assert store.pending_features(10) == []
    window = store.recent_predictions(3)
    assert window.prediction_id.tolist() == ["p008", "p009", "p011"]
    assert window.brightness.iloc[-1] == 42.0 and np.isnan(window.contrast.iloc[-1])


def test_features_are_filled_once(store: Store) -> None:
    """Two servers finishing the same pending row: the UPDATE only writes a row still pending, so the
    second filler changes nothing (and learns it), whatever it measured."""
    store.add_prediction(dataclasses.replace(_prediction(11), features=None))
    store.add_prediction(dataclasses.replace(_prediction(12), features=None))
    assert store.fill_features({"p011": {"brightness": 1.0}}) == 1
    assert store.fill_features({"p011": {"brightness": 2.0}, "p012": {"brightness": 3.0}}) == 1  # p012 only
    assert store.fill_features({"p000": {"brightness": 2.0}}) == 0  # stored with its features: never pending
    first, second, done = (store.get_prediction(p) for p in ("p011", "p012", "p000"))
    assert first is not None and first["features"] == {"brightness": 1.0} and first["features_pending"] is None
    assert second is not None and second["features"] == {"brightness": 3.0}
    assert done is not None and done["features"]["brightness"] == 0.0


def test_reviewed_feedback_and_counts(store: Store) -> None:
    ids = [_feedback(store, i, label) for i, label in enumerate(["psoriasis", "eczema", None, "eczema"])]
    decisions = [("accepted", "psoriasis"), ("accepted", "psoriasis"), ("accepted", "eczema"), ("rejected", "eczema")]
    for i, (fid, (status, label)) in enumerate(zip(ids[:3], decisions, strict=False)):
        done = store.review(
            fid,
            Review(status, label, [0, 0, 5, 5], "dr", T0 + timedelta(days=1, hours=i)),
            lambda row: f"Annotations/{row['feedback_id']}.xml",
        )
        assert done is not None and done["export_path"] == f"Annotations/{fid}.xml"
    assert (
        store.review(ids[3], Review("rejected", "eczema", None, "dr", T0 + timedelta(days=2)), lambda row: None)
        is not None
    )
    assert store.review(ids[0], Review("rejected", None, None, "x", T0), lambda row: None) is None  # final
    frame = store.reviewed_feedback()
    assert list(frame.columns) == ["feedback_id", "reviewed_at", "status", "model_label", "true_label", "correct"]
    assert list(frame.feedback_id) == ids and list(frame.correct) == [True, False, False, True]
    assert frame.correct.dtype == bool and str(frame.reviewed_at.dt.tz) == "UTC"
    assert list(store.reviewed_feedback(since=T0 + timedelta(days=1, hours=1)).feedback_id) == ids[1:]
    assert store.count_feedback() == 3 and store.count_feedback("rejected") == 1
    assert store.count_feedback("accepted", since=T0 + timedelta(days=1, hours=2)) == 1
    _feedback(store, 5, "psoriasis")
    assert store.count_feedback("pending") == 1
    with pytest.raises(ValueError, match="status"):
        store.count_feedback("done")


def test_a_failing_export_rolls_the_review_back(store: Store) -> None:
    fid = _feedback(store, 0, "psoriasis")

    def broken(_row: dict) -> str:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.review(fid, Review("accepted", "psoriasis", None, "dr", T0), broken)
    assert store.get_feedback(fid)["status"] == "pending"


def test_a_store_from_before_per_user_sign_in_is_upgraded_on_open(tmp_path: Path) -> None:
    """Columns added since (user ids, orientation, the retention tombstone) are added, rows kept."""
    import sqlite3

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE predictions (prediction_id VARCHAR(32) PRIMARY KEY, created_at DATETIME NOT NULL, "
            "kind VARCHAR(16) NOT NULL, model_name VARCHAR(200) NOT NULL, model_version VARCHAR(50) NOT NULL, "
            "input_sha256 VARCHAR(64) NOT NULL, image_path VARCHAR(300) NOT NULL, image_width INTEGER NOT "
            "NULL, image_height INTEGER NOT NULL, box JSON, outputs JSON NOT NULL, predicted_class "
            "VARCHAR(200), confidence FLOAT, features JSON NOT NULL, embedding BLOB)"
        )
        conn.execute(
            "INSERT INTO predictions VALUES ('old', '2026-01-01 00:00:00', 'classify', 'm', '1', 'ab', "
            "'ab/ab.jpg', 8, 8, NULL, '{}', 'psoriasis', 0.5, '{}', NULL)"
        )
    store = Store(f"sqlite:///{db}")
    old = store.get_prediction("old")
    assert old is not None and old["user_id"] is None and old["image_deleted_at"] is None
    assert old["features_pending"] is None and store.recent_predictions(10).prediction_id.tolist() == ["old"]
    store.add_prediction(_prediction(1))
    assert store.count_predictions() == 2 and store.list_users() == []


def test_servers_starting_together_on_an_empty_database_all_open_it(store_url: str) -> None:
    """Every server process creates the schema on open; several starting at once must not trip over
    each other (CREATE TABLE/INDEX racing), and the schema is there exactly once afterwards."""
    opened: list[Store] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(OPENERS)

    def open_store() -> None:
        barrier.wait()
        try:
            opened.append(Store(store_url))
        except BaseException as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(OPENERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, [repr(e) for e in errors]
    assert len(opened) == OPENERS
    opened[0].add_prediction(_prediction(1))
    assert [s.count_predictions() for s in opened] == [1] * OPENERS
    for s in opened:
        s.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("serving/lesionops.db", "expected a database URL"),
        ("mysql://lesionops:s3cret@db/serving", "no driver for mysql://lesionops:\\*\\*\\*@db/serving"),
        ("postgresql://lesionops:s3cret@/serving?host=/nonexistent", "cannot open the store at postgresql://"),
    ],
)
def test_a_store_url_that_cannot_work_names_the_setting(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"^serve.store_url: {problem}") as caught:
        Store(url)
    assert "s3cret" not in str(caught.value)


def test_a_missing_postgres_database_names_the_setting(postgres_server: Any) -> None:
    """A real server that answers, but the database in the URL does not exist."""
    url = make_url(postgres_server.get_uri(database="no_such_db")).set(password="s3cret")
    with pytest.raises(ConfigError, match='serve.store_url: cannot open .*"no_such_db" does not exist') as caught:
        Store(url.render_as_string(hide_password=False))
    assert "s3cret" not in str(caught.value)
