"""Retention of stored patient photos: unreported uploads older than `serve.retention_days` go.

Every upload is kept as a content-addressed file so the drift monitor and a later report can use
it; a photo nobody reported has no reason to outlive the retention period. Its prediction rows stay
(features, embedding and outputs still feed the drift windows), tombstoned with
`image_deleted_at`. A photo is kept while any report (pending, accepted or rejected) or any newer
prediction refers to it: reported photos stay with the feedback data they became.

Order of work, per image: claim the rows with a conditional UPDATE (it re-checks "unreported, no
newer use" inside the transaction), delete the file, then commit. A crash after the delete and
before the commit leaves untombstoned rows whose file is gone, and the next run tombstones them;
the other order could leave a tombstone over a photo that is still on disk, kept for ever.
A file whose modification time is newer than the cutoff is never deleted: `store_image` touches an
existing file when a new upload reuses it, which closes most of the window in which a concurrent
upload could lose it. Files no row refers to at all (a request that failed after storing its
image) are deleted too once they are older than the cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import exists, select, union, update

from components.common.store import Store
from components.common.store_schema import feedback, naive_utc, predictions, utc_now

ACTOR = "system:retention"


@dataclass
class RetentionResult:
    cutoff: datetime
    deleted: list[str] = field(default_factory=list)  # image paths removed (relative to image_dir)
    tombstoned: int = 0  # prediction rows marked image_deleted_at
    kept_reported: int = 0  # expired images kept because a report refers to them
    orphans: list[str] = field(default_factory=list)  # files no row referred to

    def summary(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "deleted": len(self.deleted),
            "tombstoned": self.tombstoned,
            "kept_reported": self.kept_reported,
            "orphans_deleted": len(self.orphans),
        }


def _older(path: Path, cutoff: datetime) -> bool:
    """True when the file is absent or was last written before the cutoff."""
    try:
        return path.stat().st_mtime < cutoff.timestamp()
    except FileNotFoundError:
        return True


def _candidates(store: Store, cutoff: datetime) -> tuple[dict[str, str], int]:
    """Expired, untombstoned images nobody reported: {sha256: path}; and how many were reported."""
    naive = naive_utc(cutoff)
    query = (
        select(predictions.c.input_sha256, predictions.c.image_path)
        .distinct()
        .where(predictions.c.created_at < naive, predictions.c.image_deleted_at.is_(None))
    )
    with store.engine.connect() as conn:
        expired = {r.input_sha256: r.image_path for r in conn.execute(query)}
        reported = {r[0] for r in conn.execute(select(feedback.c.input_sha256).distinct())}  # reports are few
    return {s: p for s, p in expired.items() if s not in reported}, len(expired.keys() & reported)


def _expire_one(store: Store, image_dir: Path, sha: str, rel: str, cutoff: datetime, now: datetime) -> int:
    """Tombstone every row of one image and delete its file, in one transaction; rows claimed."""
    newer = predictions.alias("newer")
    claim = (
        update(predictions)
        .where(
            predictions.c.input_sha256 == sha,
            predictions.c.image_deleted_at.is_(None),
            ~exists().where(newer.c.input_sha256 == sha, newer.c.created_at >= naive_utc(cutoff)),
            ~exists().where(feedback.c.input_sha256 == sha),
        )
        .values(image_deleted_at=naive_utc(now))
    )
    path = image_dir / rel
    with store.engine.begin() as conn:
        if not _older(path, cutoff):
            return 0  # re-uploaded a moment ago: its new prediction is on its way
        claimed = conn.execute(claim).rowcount
        if claimed:
            path.unlink(missing_ok=True)
    return int(claimed)


def _orphans(store: Store, image_dir: Path, cutoff: datetime) -> list[Path]:
    """Stored files older than the cutoff that no live prediction and no report refers to."""
    live = union(
        select(predictions.c.image_path).where(predictions.c.image_deleted_at.is_(None)), select(feedback.c.image_path)
    )
    with store.engine.connect() as conn:
        referenced = {r[0] for r in conn.execute(live)}
    files = (p for p in image_dir.glob("*/*") if p.is_file() and not p.name.startswith("."))
    return [p for p in files if p.relative_to(image_dir).as_posix() not in referenced and _older(p, cutoff)]


def apply_retention(store: Store, image_dir: Path, days: float, now: datetime | None = None) -> RetentionResult:
    """Delete the photos of unreported predictions older than `days`; every deletion is an audit event."""
    now = now or utc_now()
    cutoff = now - timedelta(days=days)
    result = RetentionResult(cutoff)
    expired, result.kept_reported = _candidates(store, cutoff)
    for sha, rel in sorted(expired.items()):
        claimed = _expire_one(store, image_dir, sha, rel, cutoff, now)
        if claimed:
            result.deleted.append(rel)
            result.tombstoned += claimed
            store.add_event("retention_delete", ACTOR, sha, {"path": rel, "rows": claimed, "days": days}, now)
    for path in _orphans(store, image_dir, cutoff):
        rel = path.relative_to(image_dir).as_posix()
        path.unlink(missing_ok=True)
        result.orphans.append(rel)
        store.add_event("retention_delete", ACTOR, path.stem, {"path": rel, "rows": 0, "days": days}, now)
    return result
