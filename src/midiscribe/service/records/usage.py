"""Audio seconds processed per API key and UTC day: usage shown by ``keys list`` and ``/metrics``,
and the daily quota (``MAX_AUDIO_SECONDS_PER_DAY``, or the key's own) checked at submit time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from midiscribe.service.records.db import api_keys, key_usage, tasks, utcnow

ACTIVE = ("queued", "processing")


def day_of(moment: dt.datetime | None = None) -> str:
    return (moment or utcnow()).astimezone(dt.UTC).strftime("%Y-%m-%d")


def seconds_to_next_day(moment: dt.datetime | None = None) -> float:
    """Until the quota's day ends (UTC midnight): the Retry-After of a quota_exceeded."""
    now = (moment or utcnow()).astimezone(dt.UTC)
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def record(conn: Connection, key_id: str, audio_s: float) -> None:
    """Add a finished task's audio seconds to its key's day (inside the caller's transaction).

    One upsert, so two workers finishing tasks of one key at once both count."""
    dialect = conn.dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(key_usage).values(key_id=key_id, day=day_of(), audio_s=audio_s, tasks=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key_usage.c.key_id, key_usage.c.day],
        set_={"audio_s": key_usage.c.audio_s + audio_s, "tasks": key_usage.c.tasks + 1},
    )
    conn.execute(stmt)


def used_today(engine: Engine, key_id: str) -> float:
    with engine.connect() as conn:
        used = conn.execute(
            select(key_usage.c.audio_s).where(key_usage.c.key_id == key_id, key_usage.c.day == day_of())
        ).scalar()
    return float(used or 0.0)


def pending_s(engine: Engine, key_id: str) -> float:
    """Known audio seconds of this key's queued and running tasks (uploads: known at submit)."""
    with engine.connect() as conn:
        total = conn.execute(
            select(func.sum(tasks.c.input_duration_s)).where(tasks.c.key_id == key_id, tasks.c.status.in_(ACTIVE))
        ).scalar()
    return float(total or 0.0)


def totals(engine: Engine) -> list[tuple[str, str, float, float, int]]:
    """Per key: (id, name, audio seconds today, audio seconds in all, tasks in all)."""
    today = day_of()
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.name,
                func.coalesce(func.sum(key_usage.c.audio_s), 0.0),
                func.coalesce(func.sum(key_usage.c.tasks), 0),
            )
            .select_from(api_keys.outerjoin(key_usage, key_usage.c.key_id == api_keys.c.id))
            .group_by(api_keys.c.id, api_keys.c.name)
        ).all()
        daily = dict(
            conn.execute(select(key_usage.c.key_id, key_usage.c.audio_s).where(key_usage.c.day == today)).all()
        )
    return [(r[0], r[1], float(daily.get(r[0], 0.0)), float(r[2]), int(r[3])) for r in rows]
