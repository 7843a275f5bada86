"""Tables (API keys, tasks, webhook deliveries and attempts) and the engine.

SQLite by default (WAL, so the API and worker processes read while one writes); any
SQLAlchemy URL works (PostgreSQL for several nodes). The schema is changed only by the Alembic
migrations in ``migrations/``. A task row is the single truth of who runs what: ``lease_owner``
holds it until ``lease_until``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
)

metadata = MetaData()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("webhook_secret", String(100), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("revoked_at", UTCDateTime(), nullable=True),
    # 0003: the key's own daily quota of audio seconds (None: the server's default)
    Column("max_audio_seconds_per_day", Float, nullable=True),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("conversion_id", String(36), nullable=False),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("status", String(16), nullable=False, default="queued"),
    Column("progress", Integer, nullable=False, default=0),
    Column("request", JSON, nullable=False),
    Column("input_kind", String(16), nullable=False),
    Column("input_ref", Text, nullable=False),
    Column("input_name", String(300), nullable=False, default=""),
    Column("webhook_url", Text, nullable=False, default=""),
    Column("result", JSON, nullable=True),
    Column("n_notes", Integer, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("error_status", Integer, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    # distributed: the audio duration known at submit time (routing, time limits) and the last
    # publish to the broker, so the sweep re-publishes lost messages with a backoff (0002).
    Column("input_duration_s", Float, nullable=True),
    Column("dispatched_at", UTCDateTime(), nullable=True),
    Column("dispatch_count", Integer, nullable=False, default=0, server_default="0"),
    # 0003: when the task's stored files were deleted (retention sweep, or DELETE by its owner)
    Column("files_deleted_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow),
    Index("ix_tasks_status_created", "status", "created_at"),
    Index("ix_tasks_key_created", "key_id", "created_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(36), ForeignKey("tasks.id"), nullable=False, unique=True),
    Column("webhook_id", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempt_count", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime(), nullable=False, default=utcnow),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False, default=0),
)


# 0003: audio seconds processed per key and UTC day (usage, quotas).
key_usage = Table(
    "key_usage",
    metadata,
    Column("key_id", String(32), ForeignKey("api_keys.id"), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("audio_s", Float, nullable=False, default=0.0),
    Column("tasks", Integer, nullable=False, default=0),
)

# 0003: Idempotency-Key of a submission -> the task it created (kept idempotency_ttl_s).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key_id", String(32), ForeignKey("api_keys.id"), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Index("ix_idempotency_created", "created_at"),
)

# 0003: one row per API node, written and read back by /readyz (a real write, not SELECT 1).
readiness = Table(
    "readiness",
    metadata,
    Column("node", String(100), primary_key=True),
    Column("checked_at", UTCDateTime(), nullable=False),
)

# 0004: one row per `midiscribe worker` node, written every WORKER_HEARTBEAT_S by its watchdog
# (service/work/watchdog.py): state is listening, broker_down, deaf or stopped; consumed_at is the
# last task message it received. /readyz reads it (issue 12, defect 5).
worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("queues", String(300), nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("busy", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("beat_at", UTCDateTime(), nullable=False),
    Column("consumed_at", UTCDateTime(), nullable=True),
)


# 0005: requests per rate-limit bucket (an API key) and minute, shared by every API node (issue 12).
rate_counters = Table(
    "rate_counters",
    metadata,
    Column("bucket", String(200), primary_key=True),
    Column("minute", BigInteger, primary_key=True),  # whole minutes since the epoch
    Column("count", Integer, nullable=False),
)


def make_engine(url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and foreign keys.

    ``busy_timeout_s`` bounds how long a statement waits for a lock (SQLite's busy timeout,
    PostgreSQL's lock_timeout) or for a connection (connect timeout, pool): the API uses a short
    one so a locked or unreachable database answers 503 fast; workers keep a long one."""
    if url.startswith("sqlite"):
        busy_ms = int(busy_timeout_s * 1000)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args = {
            "connect_timeout": max(1, round(busy_timeout_s)),
            "options": f"-c lock_timeout={int(busy_timeout_s * 1000)}",
        }
    return create_engine(url, pool_pre_ping=True, pool_timeout=busy_timeout_s, connect_args=connect_args)


def init_db(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic; see ``migrate.py``)."""
    from midiscribe.service.records.migrate import upgrade

    upgrade(engine)
