"""Rate-limit buckets in the database, shared by every API node that uses it (issue 12).

A token bucket in its GCRA form (the generic cell rate algorithm): ``per_minute`` requests in a
burst, then one every ``60 / per_minute`` s. Each bucket is one number, its *theoretical arrival
time* (TAT): a request is allowed if pushing the TAT one interval further keeps it within a minute
of now. The check and the push are one conditional ``UPDATE``, atomic on every database (PostgreSQL
re-checks the condition on the row it waited for), so nodes never admit more than the rate.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, case, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from midiscribe.service.records.db import rate_buckets

PERIOD_S = 60.0


def gcra(tat: float, now: float, per_minute: int) -> tuple[float, float]:
    """(the bucket's new TAT, 0) if a request at ``now`` is allowed, else (``tat``, seconds to wait)."""
    interval = PERIOD_S / per_minute
    new_tat = max(tat, now) + interval
    wait = new_tat - now - PERIOD_S
    return (new_tat, 0.0) if wait <= 1e-9 else (tat, wait)


def hit(engine: Engine, bucket: str, per_minute: int, *, now: float | None = None) -> float:
    """Count one request in ``bucket`` if it stays within ``per_minute``: 0, else the seconds
    until one more would be allowed (and nothing is counted)."""
    now = time.time() if now is None else now
    interval = PERIOD_S / per_minute
    c = rate_buckets.c
    start = case((c.tat < now, now), else_=c.tat)  # max(tat, now) on every backend
    with engine.begin() as conn:
        _ensure(conn, bucket, now)
        allowed = conn.execute(
            update(rate_buckets)
            .where(c.bucket == bucket, start + interval - now <= PERIOD_S + 1e-9)
            .values(tat=start + interval)
        ).rowcount
        if allowed:
            return 0.0
        tat = float(conn.execute(select(c.tat).where(c.bucket == bucket)).scalar_one())
    return max(0.001, gcra(tat, now, per_minute)[1])


def _ensure(conn: Any, bucket: str, now: float) -> None:
    """The bucket's row, created full (TAT now) if it is new."""
    upsert: Any = {"postgresql": pg_insert, "sqlite": sqlite_insert}.get(conn.dialect.name)
    if upsert is not None:
        conn.execute(upsert(rate_buckets).values(bucket=bucket, tat=now).on_conflict_do_nothing())
        return
    if conn.execute(select(rate_buckets.c.bucket).where(rate_buckets.c.bucket == bucket)).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(rate_buckets).values(bucket=bucket, tat=now))
        except IntegrityError:  # another node created it meanwhile
            pass
