"""Durable record of every prediction and every feedback report (tables in store_schema.py).

The API acknowledges a feedback report (201) only after its commit, which on SQLite (WAL,
`synchronous=FULL`) or PostgreSQL survives a killed process. Concurrent writers share a commit
(group commit, components/common/grouping.py): one fsync for a group of rows, each caller still
returning only once its row is committed. Embeddings are float32 bytes:
4 bytes a dimension instead of ~20 as JSON text. The drift monitor reads this store through
`recent_predictions`, `reviewed_feedback` and `count_feedback` only.

Who did what: every prediction and report names its user (`user_id`, `reporter_id`), a review its
`reviewer`; `users` holds the serving accounts (a salted token hash, never a token) and `events`
the actions that have no row of their own (retention deletions, merges into training data, user
changes). An image deleted by retention keeps its row, tombstoned by `image_deleted_at`. Columns
added since a database was created are added on open (`_upgrade`): old stores keep working.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from components.common.grouping import Grouper
from components.common.store_drift import DriftReads, embedding_list
from components.common.store_schema import (
    STATUSES,
    aware,
    events,
    feedback,
    naive_utc,
    open_engine,
    predictions,
    users,
    utc_now,
)

GROUP_COMMIT_ROWS = 64  # most rows concurrent requests share one commit (one fsync) with

__all__ = ["STATUSES", "Feedback", "ImageDeleted", "Prediction", "Review", "Store", "StoredImage", "utc_now"]


@dataclass(frozen=True)
class StoredImage:
    """Where an uploaded image lives (content-addressed) and what it is."""

    sha256: str
    path: str  # relative to serve.image_dir
    width: int
    height: int
    orientation: int = 1  # EXIF orientation of the upload (the stored copy carries no EXIF)


@dataclass(frozen=True)
class Prediction:
    prediction_id: str
    created_at: datetime
    kind: str
    model_name: str
    model_version: str
    image: StoredImage
    box: list[float] | None
    outputs: dict[str, Any]
    predicted_class: str | None
    confidence: float | None
    features: dict[str, float] | None  # None: measured later (the row is stored `features_pending`)
    embedding: np.ndarray | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class Feedback:
    feedback_id: str
    created_at: datetime
    prediction_id: str | None
    image: StoredImage
    suggested_label: str
    note: str | None
    box: list[float] | None
    model_label: str | None
    reporter_id: str | None = None


class ImageDeleted(LookupError):
    """A report on a prediction whose image retention already deleted."""


@dataclass(frozen=True)
class Review:
    """The expert's decision on one report."""

    status: str  # accepted | rejected
    true_label: str | None
    box: list[float] | None
    reviewer: str
    reviewed_at: datetime


def _embedding_bytes(vec: np.ndarray | None) -> bytes | None:
    return None if vec is None else np.asarray(vec, dtype="<f4").ravel().tobytes()


class Store(DriftReads):
    """Predictions and feedback in one database; safe to share between threads."""

    def __init__(self, url: str, setting: str = "serve.store_url") -> None:
        """`setting`: where the URL came from, named by the ConfigError of a URL that cannot work."""
        self.url = url
        self.engine = open_engine(url, setting)
        self._commits: Grouper[Callable[[Connection], Any]] = Grouper()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _durably(self, job: Callable[[Connection], Any]) -> None:
        """Run `job` in a transaction shared with concurrent writers (group commit: one commit, one
        fsync for all of them); returns only once that transaction is committed."""
        self._commits.run(job, self._commit_group, GROUP_COMMIT_ROWS)

    def _commit_group(self, jobs: list[Callable[[Connection], Any]]) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(jobs)
        try:
            with self._tx() as conn:
                for i, job in enumerate(jobs):
                    try:
                        job(conn)
                    except ImageDeleted as exc:  # a refusal raised before the job wrote anything
                        results[i] = exc
        except SQLAlchemyError:
            if len(jobs) == 1:
                raise
            return [self._alone(job) for job in jobs]  # one bad row must not fail the others
        return results

    def _alone(self, job: Callable[[Connection], Any]) -> BaseException | None:
        try:
            with self._tx() as conn:
                job(conn)
        except (SQLAlchemyError, ImageDeleted) as exc:
            return exc
        return None

    # ---- writes -------------------------------------------------------------------------------
    def add_prediction(self, p: Prediction) -> None:
        """Insert a prediction; returns once it is committed."""
        self._durably(lambda conn: self._insert_prediction(conn, p))

    @staticmethod
    def _insert_prediction(conn: Connection, p: Prediction) -> None:
        row = {
            **{k: v for k, v in asdict(p).items() if k not in ("image", "embedding")},
            "created_at": naive_utc(p.created_at),
            "embedding": _embedding_bytes(p.embedding),
            "features": {} if p.features is None else p.features,
            "features_pending": True if p.features is None else None,
            **_image_columns(p.image),
        }
        conn.execute(predictions.insert().values(**row))

    def fill_features(self, features: dict[str, dict[str, float]]) -> int:
        """Store the drift features of pending rows (prediction_id → features) in one commit; returns
        how many were still pending. A row filled meanwhile (by this server or another one on the
        same database) is left as it is: the UPDATE is conditional, so no row is filled twice.
        Shares the group commit of the requests' inserts."""
        done: list[int] = []

        def job(conn: Connection) -> None:
            pending, written = predictions.c.features_pending.is_(True), 0
            for prediction_id, values in features.items():
                query = update(predictions).where(predictions.c.prediction_id == prediction_id, pending)
                written += conn.execute(query.values(features=values, features_pending=None)).rowcount
            done.append(written)

        self._durably(job)
        return done[-1] if done else 0  # the last try is the one committed (a failed group retries alone)

    def pending_features(self, limit: int) -> list[tuple[str, str]]:
        """(prediction_id, image_path) of up to `limit` rows whose features are still pending, oldest first."""
        query = (
            select(predictions.c.prediction_id, predictions.c.image_path)
            .where(predictions.c.features_pending.is_(True))
            .order_by(predictions.c.created_at, predictions.c.prediction_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(r.prediction_id, r.image_path) for r in conn.execute(query)]

    def add_feedback(self, f: Feedback) -> None:
        """Insert a pending report; returns only once it is committed (the 201 means durable).

        ImageDeleted when the prediction's image was deleted by retention: checked in the same
        transaction, so a report never points at a file that is gone."""
        row = {
            **{k: v for k, v in asdict(f).items() if k != "image"},
            "created_at": naive_utc(f.created_at),
            "status": "pending",
            **_image_columns(f.image),
        }

        def job(conn: Connection) -> None:
            if (
                f.prediction_id is not None
                and conn.execute(
                    select(predictions.c.image_deleted_at).where(predictions.c.prediction_id == f.prediction_id)
                ).scalar()
                is not None
            ):
                raise ImageDeleted(f.prediction_id)  # before the insert: the shared transaction stays clean
            conn.execute(feedback.insert().values(**row))

        self._durably(job)

    def add_event(
        self,
        action: str,
        user_id: str | None,
        subject: str | None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """One line of the audit trail for an action that has no row of its own."""
        with self._tx() as conn:
            conn.execute(
                events.insert().values(
                    event_id=uuid.uuid4().hex,
                    at=naive_utc(at or utc_now()),
                    user_id=user_id,
                    action=action,
                    subject=subject,
                    detail=detail,
                )
            )

    def list_events(self, subjects: list[str] | None = None, action: str | None = None) -> list[dict[str, Any]]:
        """Audit events, oldest first; `subjects` matches exactly (image sha256s, user ids...)."""
        query = select(events).order_by(events.c.at, events.c.event_id)
        if subjects is not None:
            query = query.where(events.c.subject.in_(subjects))
        if action is not None:
            query = query.where(events.c.action == action)
        with self.engine.connect() as conn:
            return [{**r._asdict(), "at": aware(r.at)} for r in conn.execute(query)]

    # ---- users (lesionops/serve/users.py hashes and checks the tokens) --------------------------
    def add_user(self, user_id: str, name: str, role: str, token_hash: str | None, source: str = "token") -> None:
        with self._tx() as conn:
            conn.execute(
                users.insert().values(
                    user_id=user_id,
                    name=name,
                    role=role,
                    token_hash=token_hash,
                    source=source,
                    created_at=naive_utc(utc_now()),
                )
            )

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """A user by id (revoked ones too: the caller decides), or by name when no id matches."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(users).where(users.c.user_id == user_id)).first()
                or conn.execute(select(users).where(users.c.name == user_id)).first()
            )
        return (
            None
            if row is None
            else {**row._asdict(), "created_at": aware(row.created_at), "revoked_at": aware(row.revoked_at)}
        )

    def list_users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.created_at, users.c.name))
            return [{**r._asdict(), "created_at": aware(r.created_at), "revoked_at": aware(r.revoked_at)} for r in rows]

    def update_user(self, user_id: str, **values: Any) -> bool:
        """Change a user's role/name/hash or revoke them (`revoked_at`); False for an unknown id."""
        values = {k: naive_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}
        with self._tx() as conn:
            return conn.execute(update(users).where(users.c.user_id == user_id).values(**values)).rowcount == 1

    def review(
        self, feedback_id: str, decision: Review, export: Callable[[dict[str, Any]], str | None]
    ) -> dict[str, Any] | None:
        """Close a pending report; None when it is not pending (reviewed meanwhile, or unknown).

        The row is claimed with a conditional UPDATE (only one of two concurrent reviewers wins),
        then `export(row)` writes the VOC files inside the same transaction: if writing fails the
        claim rolls back and the report stays pending.
        """
        values = {
            "status": decision.status,
            "true_label": decision.true_label,
            "review_box": decision.box,
            "reviewer": decision.reviewer,
            "reviewed_at": naive_utc(decision.reviewed_at),
        }
        with self._tx() as conn:
            claimed = conn.execute(
                update(feedback)
                .where(feedback.c.feedback_id == feedback_id, feedback.c.status == "pending")
                .values(**values)
            )
            if claimed.rowcount != 1:
                return None
            row = _feedback_row(conn.execute(select(feedback).where(feedback.c.feedback_id == feedback_id)).one())
            path = export(row)
            if path is not None:
                conn.execute(update(feedback).where(feedback.c.feedback_id == feedback_id).values(export_path=path))
            return {**row, "export_path": path}

    # ---- reads used by the API ----------------------------------------------------------------
    def get_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(predictions).where(predictions.c.prediction_id == prediction_id)).first()
        return None if row is None else _prediction_row(row)

    def get_feedback(self, feedback_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(feedback).where(feedback.c.feedback_id == feedback_id)).first()
        return None if row is None else _feedback_row(row)

    def list_feedback(self, status: str | None = "pending", limit: int = 200) -> list[dict[str, Any]]:
        """Reports oldest first (a queue), with the prediction each one is about (or None)."""
        query = select(feedback).order_by(feedback.c.created_at, feedback.c.feedback_id).limit(limit)
        if status is not None:
            query = query.where(feedback.c.status == status)
        with self.engine.connect() as conn:
            rows = [_feedback_row(r) for r in conn.execute(query)]
            ids = [r["prediction_id"] for r in rows if r["prediction_id"]]
            preds = {
                r.prediction_id: _prediction_row(r)
                for r in conn.execute(select(predictions).where(predictions.c.prediction_id.in_(ids)))
            }
        return [{**r, "prediction": preds.get(r["prediction_id"])} for r in rows]

    def count_predictions(self, kind: str | None = None) -> int:
        query = select(func.count()).select_from(predictions)
        if kind is not None:
            query = query.where(predictions.c.kind == kind)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _image_columns(image: StoredImage) -> dict[str, Any]:
    return {
        "input_sha256": image.sha256,
        "image_path": image.path,
        "image_width": image.width,
        "image_height": image.height,
        "orientation": image.orientation,
    }


def _prediction_row(row: Any) -> dict[str, Any]:
    out = row._asdict()
    out["created_at"] = aware(out["created_at"])
    out["image_deleted_at"] = aware(out["image_deleted_at"])
    out["embedding"] = embedding_list(out["embedding"])
    return out


def _feedback_row(row: Any) -> dict[str, Any]:
    out = row._asdict()
    out["created_at"] = aware(out["created_at"])
    out["reviewed_at"] = aware(out["reviewed_at"])
    return out
