"""The serving store's schema: tables, engines and upgrades (SQLAlchemy Core, any dialect).

SQLite is the default because it needs no server; it runs in WAL mode with `synchronous=FULL`,
so a transaction that returned from COMMIT survives a killed process (and a power cut). PostgreSQL
works by URL with the same code: nothing here is dialect-specific (JSON and LargeBinary map to
JSON/BLOB and JSON/BYTEA). Times are stored as naive UTC and handed back timezone-aware (UTC).
Columns added since a database was created are added on open (`upgrade`): old stores keep working.
Several server processes may share one database (PostgreSQL) and open it at the same time
(`create_schema`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from components.common.errors import ConfigError

STATUSES = ("pending", "accepted", "rejected")
metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
    Column("prediction_id", String(32), primary_key=True),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("kind", String(16), nullable=False, index=True),  # classify | detect
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("input_sha256", String(64), nullable=False, index=True),
    Column("image_path", String(300), nullable=False),  # relative to serve.image_dir
    Column("image_width", Integer, nullable=False),
    Column("image_height", Integer, nullable=False),
    Column("box", JSON),  # [x1, y1, x2, y2] or null
    Column("outputs", JSON, nullable=False),  # the answer as returned (top-k or detections)
    Column("predicted_class", String(200)),  # top-1 class (detect: best-scoring box), null if none
    Column("confidence", Float),
    Column("features", JSON, nullable=False),  # monitor_drift's features of the full uploaded image
    Column("embedding", LargeBinary),  # float32 penultimate-layer activations (classifier only)
    Column("user_id", String(200), index=True),  # who asked (null: rows from before per-user tokens)
    Column("orientation", Integer),  # the upload's EXIF orientation: the stored copy has no EXIF left
    Column("image_deleted_at", DateTime, index=True),  # tombstone: the image file was deleted (retention)
    # true: `features` not measured yet (serving's feature worker fills them after the answer); null: done
    Column("features_pending", Boolean, index=True),
)

feedback = Table(
    "feedback",
    metadata,
    Column("feedback_id", String(32), primary_key=True),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("prediction_id", String(32), ForeignKey("predictions.prediction_id"), index=True),
    Column("input_sha256", String(64), nullable=False),
    Column("image_path", String(300), nullable=False),
    Column("image_width", Integer, nullable=False),
    Column("image_height", Integer, nullable=False),
    Column("suggested_label", String(200), nullable=False),
    Column("note", Text),
    Column("box", JSON),
    Column("model_label", String(200)),  # what the model answered (null: no prediction behind it)
    Column("status", String(16), nullable=False, index=True),
    Column("reviewed_at", DateTime, index=True),
    Column("reviewer", String(200)),
    Column("true_label", String(200)),
    Column("review_box", JSON),
    Column("export_path", String(300)),  # the VOC xml written on accept, relative to serve.feedback_dir
    Column("reporter_id", String(200), index=True),  # who reported (the reviewer column holds a user id too)
    Column("orientation", Integer),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(200), primary_key=True),  # random hex (token users) or oidc:<subject>
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # clinician | reviewer | admin
    Column("token_hash", String(200)),  # argon2id of the token's secret part; null for OIDC users
    Column("source", String(16), nullable=False),  # token | oidc
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String(32), primary_key=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("user_id", String(200), index=True),  # a user id, or system:<what> for scheduled work
    Column("action", String(32), nullable=False, index=True),  # e.g. retention_delete, merge, user_add
    Column("subject", String(300), index=True),  # an image sha256, a user id, ...
    Column("detail", JSON),
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def naive_utc(when: datetime) -> datetime:
    """Stored form: naive UTC (SQLite has no time zones); a naive input is taken as UTC."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL (readers never block the writer), FULL sync (a commit is on disk), a generous busy wait."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str, setting: str = "serve.store_url") -> Engine:
    """An engine for `url`; SQLite files get their folder created and the durability pragmas.

    A URL that does not parse, or names a database whose driver is not installed, is a ConfigError
    naming `setting` (the password never appears in the message)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        shown = repr(url) if "@" not in url else "a value (not shown: it may hold a password)"
        raise ConfigError(
            f"{setting}: expected a database URL such as sqlite:///serving/lesionops.db or "
            f"postgresql://user@host/db, found {shown}"
        ) from exc
    try:
        if parsed.get_backend_name() != "sqlite":
            return create_engine(parsed, pool_pre_ping=True)
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"{setting}: no driver for {parsed.render_as_string(hide_password=True)} ({exc}); "
            "SQLite and PostgreSQL (psycopg) are installed"
        ) from exc
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_engine(url: str, setting: str = "serve.store_url") -> Engine:
    """The engine of a store whose schema is created or upgraded; a URL that cannot work (does not
    parse, no driver, no server, no such database, no permission) is a ConfigError naming `setting`."""
    engine = make_engine(url, setting)
    try:
        create_schema(engine)
    except DBAPIError as exc:
        engine.dispose()
        cause = str(exc.orig or exc).strip().splitlines()[0]
        where = engine.url.render_as_string(hide_password=True)
        raise ConfigError(f"{setting}: cannot open the store at {where} ({cause})") from exc
    return engine


def create_schema(engine: Engine) -> None:
    """Create the tables, then `upgrade`: safe when several server processes open one empty (or
    old) database at the same moment.

    Each step checks first, but two openers can both find a table missing and both create it; the
    loser's CREATE/ALTER then fails ("already exists", or PostgreSQL's unique violation on pg_type).
    A failure after which more of the schema exists than before was such a race: check again. A
    failure that changed nothing (no permission, wrong database) is raised as it is.
    """
    before = _schema_objects(engine)
    while True:
        try:
            metadata.create_all(engine)
            upgrade(engine)
            return
        except DBAPIError:
            after = _schema_objects(engine)
            if after <= before:
                raise
            before = after


def _schema_objects(engine: Engine) -> set[str]:
    """Our tables, columns and indexes that exist in the database now."""
    found = inspect(engine)
    names = set(found.get_table_names())
    out: set[str] = set()
    for table in metadata.sorted_tables:
        if table.name in names:
            out.add(table.name)
            out.update(f"{table.name}.{c['name']}" for c in found.get_columns(table.name))
            out.update(f"{table.name}:{i['name']}" for i in found.get_indexes(table.name))
    return out


def upgrade(engine: Engine) -> None:
    """Add the nullable columns a table gained since this database was created (dialect-neutral
    ALTER TABLE ... ADD COLUMN), so an existing store opens with today's code."""
    found = inspect(engine)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have and column.nullable:
                kind = column.type.compile(dialect=engine.dialect)
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
        for index in table.indexes:
            index.create(engine, checkfirst=True)
