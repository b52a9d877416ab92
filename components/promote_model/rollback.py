"""Roll the champion back to the version behind `previous`, under the same lock as promotion.

After the move, `previous` points at the version that was champion before the restored one (read
from the audit log, promotions only), so repeated rollbacks walk back through the promotion history;
when the log does not know, `previous` is removed and a further rollback says there is nothing left.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.common.errors import LesionOpsError
from components.common.tracking import TrackingConfig, resolved_uri
from components.promote_model.audit import alias_move, champion_before, read_audit, record_move
from components.promote_model.config import PromoteConfig
from components.promote_model.core import current_version, promotion_lock, registered_name, version_label


def _exists(client: MlflowClient, name: str, version: str) -> bool:
    try:
        client.get_model_version(name, version)
    except MlflowException:
        return False
    return True


def rollback(
    cfg: PromoteConfig, tracking: TrackingConfig, kind: str = "classifier", reason: str = "", user: str | None = None
) -> dict[str, Any]:
    """champion ← previous; previous ← the champion before that (or removed). Audit-logged with
    `user` (a LesionOps user id; None: the OS login)."""
    name = registered_name(tracking, kind)
    mlflow.set_tracking_uri(resolved_uri(tracking))
    client = MlflowClient()
    with promotion_lock(cfg) as log:
        current = current_version(client, name, cfg.alias)
        target = current_version(client, name, cfg.previous_alias)
        if target is None or target == current:
            raise LesionOpsError(
                f"{name}: nothing to roll back to: no @{cfg.previous_alias} version other than "
                f"the champion ({version_label(current)})"
            )
        before = champion_before(read_audit(log), name, cfg.alias, target)
        if before in (current, target) or (before is not None and not _exists(client, name, before)):
            before = None  # never point `previous` at what we just rolled back from, or at nothing
        client.set_registered_model_alias(name, cfg.alias, target)
        if before is None:
            client.delete_registered_model_alias(name, cfg.previous_alias)
        else:
            client.set_registered_model_alias(name, cfg.previous_alias, before)
        run_id = client.get_model_version(name, target).run_id
        record = alias_move("rollback", name, cfg.alias, current, target, run_id, reason or "manual rollback", user)
        record_move(client, log, record)
        if current is not None:
            client.set_model_version_tag(
                name, current, "rolled_back", f"{record['time']} by {record['user']}: {record['reason']}"[:5000]
            )
    return {
        "name": name,
        "kind": kind,
        "alias": cfg.alias,
        "from_version": current,
        "to_version": target,
        "previous_alias": cfg.previous_alias,
        "previous_version": before,
        "run_id": run_id,
        "reason": record["reason"],
        "time": record["time"],
        "user": record["user"],
        "audit_log": str(log),
    }
