"""The audit trail of alias moves: one JSON line per promotion or rollback.

The registry keeps only the current aliases; the log keeps who moved which alias from which
version to which, when, from which machine and why, so an incident review (and `rollback`) can
reconstruct the champion's history. The last move is also mirrored on the registered model as the
`last_alias_move` tag, so someone looking only at the MLflow UI sees it too.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from components.common.errors import DataError

LAST_MOVE_TAG = "last_alias_move"
ACTIONS = ("promote", "rollback")


def audit_path(audit_log: str) -> Path:
    """`promote_model.audit_log` as an absolute path (relative = to the current working directory)."""
    path = Path(audit_log).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path)


def _user() -> str:
    """Who moved the alias; containers often run as a uid without a passwd entry."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or f"uid-{os.getuid()}"


def alias_move(
    action: str,
    model: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    run_id: str | None,
    reason: str,
    user: str | None = None,
) -> dict[str, Any]:
    """One audit record; versions are registry version strings, None = the alias was unset.

    `user` is the LesionOps account that asked (e.g. POST /rollback); without one, the OS login
    of the process that moved the alias (CLI, pipeline pod), prefixed `os:`."""
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {ACTIONS}, got {action!r}")
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),  # ordered against MLflow run times (ms)
        "action": action,
        "model": model,
        "alias": alias,
        "from_version": from_version,
        "to_version": to_version,
        "run_id": run_id,
        "user": user or f"os:{_user()}",
        "host": socket.gethostname(),
        "reason": reason,
    }


def append_audit(path: Path, record: dict[str, Any]) -> None:
    """Append one line and fsync it: the caller holds the promotion lock, so lines never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def record_move(client: MlflowClient, path: Path, record: dict[str, Any]) -> None:
    """Write the move to the log and to the registered model's `last_alias_move` tag."""
    append_audit(path, record)
    client.set_registered_model_tag(record["model"], LAST_MOVE_TAG, json.dumps(record, sort_keys=True))


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every record, oldest first; no file yet = no moves yet. A corrupt line is an error naming it."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"line {number} is not JSON ({exc.msg}); the audit log was edited by hand?") from exc
        if not isinstance(record, dict):
            raise DataError(path, f"line {number}: expected a JSON object, found {type(record).__name__}")
        out.append(record)
    return out


def champion_before(records: list[dict[str, Any]], model: str, alias: str, version: str) -> str | None:
    """The version that was `alias` before `version` last became it *by promotion*.

    Rollbacks are skipped on purpose: after v1→v2→v3 and a rollback to v2, the version before v2 is
    v1 (what v2 replaced), not v3 (what was just rolled back for a reason).
    """
    for record in reversed(records):
        if (
            record.get("action") == "promote"
            and record.get("model") == model
            and record.get("alias") == alias
            and record.get("to_version") == version
        ):
            return record.get("from_version")
    return None
