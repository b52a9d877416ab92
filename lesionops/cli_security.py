"""`lesionops users …`, `lesionops audit` and `lesionops retention`: accounts, who did what, and
deleting what need not be kept. All three work on the serving store (`serve.store_url`) directly,
so they run beside a live server (SQLite WAL; PostgreSQL by URL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from components.common.errors import ConfigError
from components.common.params import section
from components.common.store import Store
from components.common.tracking import TrackingConfig
from lesionops.cli_common import Commands, ParamsOpt, SetOpt, TaskOpt, console, task_params

users_app = Commands(
    prefix="users", help="Serving accounts: add (prints the token once), revoke, list.", no_args_is_help=True
)


def _store(params: Path, task: str | None, overrides: list[str] | None, command: str) -> tuple[Store, dict[str, Any]]:
    from lesionops.serve.config import ServeConfig

    doc = task_params(params, task, overrides, command)
    return Store(section(doc, "serve", ServeConfig).store_url), doc


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="a unique login name, e.g. dr.lee")],
    role: Annotated[
        str,
        typer.Option(help="clinician (classify, detect, report), reviewer (also review) or admin (reload, rollback)"),
    ],
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Create an account and print its token, once: only a salted argon2 hash of it is stored."""
    from lesionops.serve.users import add_user

    store, _ = _store(params, task, overrides, "users add")
    user, token = add_user(store, name, role)
    console.print(
        f"user {user.name} ({user.user_id}), role {user.role}. Token (shown only now; give it to "
        f"{user.name} privately):"
    )
    print(token)


@users_app.command("revoke")
def users_revoke(
    who: Annotated[str, typer.Argument(help="user name or id")],
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Revoke an account: its token stops working at the server's next request."""
    from lesionops.serve.users import revoke_user

    store, _ = _store(params, task, overrides, "users revoke")
    user = revoke_user(store, who)
    console.print(f"revoked {user.name} ({user.user_id}, {user.role})")


@users_app.command("list")
def users_list(params: ParamsOpt = Path("params.yaml"), task: TaskOpt = None, overrides: SetOpt = None) -> None:
    """Every account with its role and state (tokens are never shown: they are not stored)."""
    store, _ = _store(params, task, overrides, "users list")
    table = Table(title=f"users in {store.url}")
    for column in ("name", "id", "role", "source", "created", "revoked"):
        table.add_column(column)
    for u in store.list_users():
        table.add_row(
            u["name"],
            u["user_id"],
            u["role"],
            u["source"],
            f"{u['created_at']:%Y-%m-%d %H:%M}",
            f"{u['revoked_at']:%Y-%m-%d %H:%M}" if u["revoked_at"] else "",
        )
    console.print(table)


def audit(
    image: Annotated[
        Optional[str], typer.Option(help="an image's sha256 (≥ 8 leading hex digits, as in the feedback file names)")
    ] = None,
    model_version: Annotated[Optional[str], typer.Option(help="a registry version of the model")] = None,
    kind: Annotated[str, typer.Option(help="with --model-version: classifier or detector")] = "classifier",
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Who did what: for an image, its predictions, reports, review, deletion, the data versions it
    was merged into and the models trained on them; for a model version, its training, alias moves,
    and the reviewed photos in its data."""
    from components.promote_model.config import PromoteConfig
    from lesionops.audit_trail import Trail

    if (image is None) == (model_version is None):
        raise ConfigError("audit: give exactly one of --image SHA256 or --model-version N")
    store, doc = _store(params, task, overrides, "audit")
    tracking = section(doc, "mlflow", TrackingConfig)
    trail = Trail(store, tracking, section(doc, "promote_model", PromoteConfig).audit_log)
    if image is not None:
        steps, title = trail.image(image.strip().lower()), f"image {image}"
    else:
        name = tracking.registered_model if kind == "classifier" else tracking.registered_detector
        steps, title = trail.model(name, model_version or ""), f"{name} v{model_version}"
    if as_json:
        for step in steps:
            print(json.dumps(step.as_dict()))
        return
    table = Table(title=f"audit trail of {title}")
    for column in ("when (UTC)", "who", "what", "detail"):
        table.add_column(column, overflow="fold")
    for s in steps:
        table.add_row(f"{s.at:%Y-%m-%d %H:%M:%S}" if s.at else "?", s.who, s.what, s.detail)
    console.print(table)


def retention(
    params: ParamsOpt = Path("params.yaml"),
    task: TaskOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Apply serve.retention_days now (`lesionops monitor` does it every window): delete the photos
    of unreported predictions older than that; their rows stay, marked as deleted."""
    from lesionops.retrain import retention as run_retention
    from lesionops.serve.config import ServeConfig

    doc = task_params(params, task, overrides, "retention")
    serve = section(doc, "serve", ServeConfig)
    if serve.retention_days is None:
        raise ConfigError("serve.retention_days is null (keep for ever): set it, e.g. --set serve.retention_days=90")
    console.print(run_retention(serve))


def install(app: Commands) -> None:
    """Add these commands to the `lesionops` app."""
    app.add_typer(users_app, name="users")
    app.command("audit")(audit)
    app.command("retention")(retention)
