"""`lesionops audit`: who did what to one image, or what went into one model version.

The trail is assembled from the records each step already keeps, nothing is logged twice:
predictions and reports (`user_id`, `reporter_id`) and reviews (`reviewer`) in the serving store;
retention deletions and merges into the training data in its `events` table; the training run's
`data_version` tag in MLflow; promotions and rollbacks in `promote_model.audit_log`. The link from a
reviewed photo to a model is the data version: every retrain records, per feedback image, the DVC
version of the data it was merged into, and every training run is tagged with the version it read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy import select

from components.common.errors import ConfigError
from components.common.store import Store
from components.common.store_schema import feedback, predictions
from components.common.tracking import TrackingConfig, resolved_uri
from components.promote_model.audit import audit_path, read_audit

SYSTEM_MERGE = "system:retrain"


@dataclass(frozen=True)
class Step:
    """One line of the trail."""

    at: datetime | None
    who: str
    what: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() if self.at else None,
            "who": self.who,
            "what": self.what,
            "detail": self.detail,
        }


def _aware(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def _ms(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


class Trail:
    """Reads the store, the registry and the alias log; names users by `name (id)`."""

    def __init__(self, store: Store, tracking: TrackingConfig, audit_log: str) -> None:
        self.store, self.tracking = store, tracking
        uri = resolved_uri(tracking)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.moves = read_audit(audit_path(audit_log))
        self.names = {u["user_id"]: u["name"] for u in store.list_users()}

    def who(self, user_id: str | None) -> str:
        if not user_id:
            return "unknown (before per-user sign-in)"
        name = self.names.get(user_id)
        return f"{name} ({user_id})" if name else user_id

    # ---- one image -----------------------------------------------------------------------------
    def image(self, sha: str) -> list[Step]:
        """Everything that happened to the photo(s) whose sha256 starts with `sha`, in time order."""
        if len(sha) < 8:
            raise ConfigError("audit --image: give at least 8 hex digits of the image's sha256")
        with self.store.engine.connect() as conn:
            preds = list(conn.execute(select(predictions).where(predictions.c.input_sha256.startswith(sha))))
            reports = list(conn.execute(select(feedback).where(feedback.c.input_sha256.startswith(sha))))
        shas = {r.input_sha256 for r in (*preds, *reports)}
        if not shas:
            raise ConfigError(f"audit --image: no prediction or report of an image {sha}…")
        steps = [*self._prediction_steps(preds), *self._report_steps(reports)]
        subjects = sorted({*shas, *(s[:16] for s in shas)})
        for event in self.store.list_events(subjects):
            steps.extend(self._event_steps(event))
        return sorted(steps, key=lambda s: s.at or datetime.min.replace(tzinfo=UTC))

    def _prediction_steps(self, rows: list[Any]) -> list[Step]:
        steps = []
        for r in rows:
            steps.append(
                Step(
                    _aware(r.created_at),
                    self.who(r.user_id),
                    f"{r.kind} (prediction {r.prediction_id})",
                    f"{r.model_name} v{r.model_version} answered {r.predicted_class}",
                )
            )
            if r.image_deleted_at is not None:
                steps.append(
                    Step(
                        _aware(r.image_deleted_at),
                        "system:retention",
                        "photo deleted (retention)",
                        f"row of prediction {r.prediction_id} kept, tombstoned",
                    )
                )
        return steps

    def _report_steps(self, rows: list[Any]) -> list[Step]:
        steps = []
        for r in rows:
            about = f"on prediction {r.prediction_id}" if r.prediction_id else "with its own upload"
            steps.append(
                Step(
                    _aware(r.created_at),
                    self.who(r.reporter_id),
                    f"report {r.feedback_id}",
                    f"suggested {r.suggested_label} {about}; model said {r.model_label}",
                )
            )
            if r.status != "pending":
                export = f"; exported to {r.export_path}" if r.export_path else ""
                steps.append(
                    Step(
                        _aware(r.reviewed_at),
                        self.who(r.reviewer),
                        f"review: {r.status}",
                        f"true label {r.true_label}{export}",
                    )
                )
        return steps

    def _event_steps(self, event: dict[str, Any]) -> list[Step]:
        detail = event.get("detail") or {}
        if event["action"] != "merge":
            return [Step(event["at"], self.who(event["user_id"]), event["action"].replace("_", " "), str(detail))]
        version = detail.get("data_version", "?")
        steps = [
            Step(
                event["at"],
                event["user_id"] or SYSTEM_MERGE,
                "merged into training data",
                f"{detail.get('file', '')} in data version {version}",
            )
        ]
        for model in self.trained_on(version):
            steps.extend(self._model_steps(model))
        return steps

    # ---- models --------------------------------------------------------------------------------
    def trained_on(self, data_version: str) -> list[Any]:
        """Registered model versions (classifier and detector) whose training run read `data_version`."""
        found = []
        for name in (self.tracking.registered_model, self.tracking.registered_detector):
            for version in self.client.search_model_versions(f"name='{name}'"):
                run = self.client.get_run(version.run_id) if version.run_id else None
                if run is not None and run.data.tags.get("data_version") == data_version:
                    found.append(version)
        return sorted(found, key=lambda v: (v.name, int(v.version)))

    def _model_steps(self, version: Any) -> list[Step]:
        run = self.client.get_run(version.run_id)
        steps = [
            Step(
                _ms(run.info.start_time),
                f"os:{run.data.tags.get('mlflow.user', '?')}",
                f"trained {version.name} v{version.version}",
                f"run {version.run_id} on data version {run.data.tags.get('data_version')}",
            )
        ]
        mine = (
            m
            for m in self.moves
            if m.get("model") == version.name and str(version.version) in (m.get("to_version"), m.get("from_version"))
        )
        for move in mine:
            at = datetime.fromisoformat(move["time"]) if move.get("time") else None
            change = f"v{move.get('from_version')} → v{move.get('to_version')}"
            steps.append(
                Step(
                    at,
                    self.who(move.get("user")),
                    f"{move['action']} @{move['alias']}",
                    f"{change}: {move.get('reason', '')}",
                )
            )
        return steps

    def model(self, name: str, version: str) -> list[Step]:
        """How `name` v`version` came to be and moved, and the reviewed photos its data held."""
        try:
            found = self.client.get_model_version(name, version)
        except MlflowException as exc:
            raise ConfigError(f"audit: {name} has no version {version} ({exc})") from exc
        steps = self._model_steps(found)
        data_version = self.client.get_run(found.run_id).data.tags.get("data_version")
        merges = [
            e
            for e in self.store.list_events(action="merge")
            if (e.get("detail") or {}).get("data_version") == data_version
        ]
        for event in merges:
            steps.append(
                Step(
                    event["at"],
                    event["user_id"] or SYSTEM_MERGE,
                    "feedback image in its data",
                    f"{event['subject']}: {self._reviewers(event['subject'])}",
                )
            )
        return sorted(steps, key=lambda s: s.at or datetime.min.replace(tzinfo=UTC))

    def _reviewers(self, stem: str) -> str:
        with self.store.engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(feedback).where(feedback.c.input_sha256.startswith(stem), feedback.c.status == "accepted")
                )
            )
        return (
            "; ".join(
                f"reported by {self.who(r.reporter_id)}, accepted as {r.true_label} by {self.who(r.reviewer)}"
                for r in rows
            )
            or "no accepted report in this store"
        )


def record_merge(
    store: Store, feedback_dir: Path, images: list[Path], data_version: str, feedback_version: str
) -> None:
    """One `merge` event per feedback image (its stem is the photo's sha256[:16]) and data version."""
    for image in images:
        store.add_event(
            "merge",
            SYSTEM_MERGE,
            image.stem,
            {
                "data_version": data_version,
                "feedback_version": feedback_version,
                "file": image.relative_to(feedback_dir).as_posix(),
            },
        )
