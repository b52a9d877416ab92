"""The drift monitor's contract with the serving store: the reads `monitor_drift` makes.

`Store` (store.py) inherits these; they are kept apart because the monitor, not the API, is their
user, and because they define the frame columns the drift tests read (common.image_stats.COLUMNS).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from components.common.image_stats import COLUMNS
from components.common.store_schema import STATUSES, aware, feedback, naive_utc, predictions

# the prediction columns a window frame starts with, as stored (then the drift features and embedding)
WINDOW_COLUMNS = ("prediction_id", "created_at", "kind", "model_version", "predicted_class", "confidence")


def embedding_list(blob: bytes | None) -> list[float] | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f4").astype(float).tolist()


def since_filter(column: Any, since: datetime | None) -> list[Any]:
    return [] if since is None else [column >= naive_utc(since)]


class DriftReads:
    """Windows of predictions and reviewed reports, as DataFrames."""

    engine: Engine

    def recent_predictions(self, limit: int, kind: str = "classify", since: datetime | None = None) -> pd.DataFrame:
        """The latest `limit` predictions of `kind` (at or after `since`), oldest first.

        Rows whose drift features are still pending (serving measures them seconds after the answer)
        are left out rather than waited for: a monitor run never blocks on a server, and the next
        run counts them. Reading them with NaN features would test the window's newest rows on
        embeddings and confidence but not on image statistics, a mix no reference was built for.

        Columns: prediction_id, created_at (UTC), kind, model_version, predicted_class, confidence,
        one column per drift feature (common.image_stats.COLUMNS, NaN if absent), embedding (list or None).
        """
        query = (
            select(*(predictions.c[c] for c in (*WINDOW_COLUMNS, "features", "embedding")))
            .where(
                predictions.c.kind == kind,
                predictions.c.features_pending.is_(None),
                *since_filter(predictions.c.created_at, since),
            )
            .order_by(predictions.c.created_at.desc(), predictions.c.prediction_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))[::-1]
        records = [
            {
                **{c: getattr(r, c) for c in WINDOW_COLUMNS},
                "created_at": aware(r.created_at),
                **{f: float(r.features.get(f, np.nan)) for f in COLUMNS},
                "embedding": embedding_list(r.embedding),
            }
            for r in rows
        ]
        columns = [*WINDOW_COLUMNS, *COLUMNS, "embedding"]
        frame = pd.DataFrame(records, columns=columns)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame["confidence"] = frame["confidence"].astype(float)
        return frame

    def reviewed_feedback(self, since: datetime | None = None) -> pd.DataFrame:
        """Closed reports (accepted and rejected) reviewed at or after `since`, in review order.

        Columns: feedback_id, reviewed_at (UTC), status, model_label, true_label, correct
        (model_label == true_label; False when there was no model answer).
        """
        query = (
            select(
                feedback.c.feedback_id,
                feedback.c.reviewed_at,
                feedback.c.status,
                feedback.c.model_label,
                feedback.c.true_label,
            )
            .where(feedback.c.status.in_(("accepted", "rejected")), *since_filter(feedback.c.reviewed_at, since))
            .order_by(feedback.c.reviewed_at, feedback.c.feedback_id)
        )
        with self.engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=["feedback_id", "reviewed_at", "status", "model_label", "true_label"])
        frame["reviewed_at"] = pd.to_datetime(frame["reviewed_at"], utc=True)
        frame["correct"] = [m is not None and m == t for m, t in zip(frame.model_label, frame.true_label, strict=True)]
        frame["correct"] = frame["correct"].astype(bool)
        return frame

    def count_feedback(self, status: str = "accepted", since: datetime | None = None) -> int:
        """Reports in `status`; `since` filters on the review time (on the report time for pending)."""
        if status not in STATUSES:
            raise ValueError(f"status: expected one of {list(STATUSES)}, found {status!r}")
        when = feedback.c.created_at if status == "pending" else feedback.c.reviewed_at
        query = (
            select(func.count()).select_from(feedback).where(feedback.c.status == status, *since_filter(when, since))
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
