"""Rate-limit counters in the database, shared by every API node that uses it (issue 12).

A sliding-window counter (the estimate ``limits`` and Cloudflare use): requests are counted per
whole minute, and the rate over the last 60 s is estimated as this minute's count plus last
minute's weighted by how much of it the window still covers. One row per bucket and minute; a hit
is an atomic increment (an upsert, which holds the row's lock until the transaction ends, so
concurrent nodes queue up on it), rolled back when it would go over the limit. Nodes never admit
more than the estimate allows; under a race they can only refuse a little early.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from midiscribe.service.records.db import rate_counters

PERIOD_S = 60.0


def hit(engine: Engine, bucket: str, limit: int, *, now: float | None = None) -> float:
    """Count one request in ``bucket`` if it stays within ``limit`` per minute: 0, else the
    seconds until one more would be allowed (and nothing is counted)."""
    now = time.time() if now is None else now
    minute = int(now // PERIOD_S)
    elapsed = now / PERIOD_S - minute  # how much of this minute has passed, 0..1
    with engine.connect() as conn, conn.begin() as tx:
        count = _increment(conn, bucket, minute)
        previous = conn.execute(
            select(rate_counters.c.count).where(rate_counters.c.bucket == bucket, rate_counters.c.minute == minute - 1)
        ).scalar()
        previous = int(previous or 0)
        if previous * (1 - elapsed) + count <= limit:
            if count == 1:  # the first request of a minute clears the bucket's older rows
                conn.execute(
                    delete(rate_counters).where(rate_counters.c.bucket == bucket, rate_counters.c.minute < minute - 1)
                )
            return 0.0
        tx.rollback()
    return _wait_s(previous, count - 1, limit, elapsed)


def _increment(conn: Any, bucket: str, minute: int) -> int:
    upsert: Any = {"postgresql": pg_insert, "sqlite": sqlite_insert}.get(conn.dialect.name)
    if upsert is not None:
        stmt = (
            upsert(rate_counters)
            .values(bucket=bucket, minute=minute, count=1)
            .on_conflict_do_update(index_elements=["bucket", "minute"], set_={"count": rate_counters.c.count + 1})
            .returning(rate_counters.c.count)
        )
        return int(conn.execute(stmt).scalar_one())
    where = (rate_counters.c.bucket == bucket, rate_counters.c.minute == minute)
    if not conn.execute(update(rate_counters).where(*where).values(count=rate_counters.c.count + 1)).rowcount:
        conn.execute(insert(rate_counters).values(bucket=bucket, minute=minute, count=1))
    return int(conn.execute(select(rate_counters.c.count).where(*where)).scalar_one())


def _wait_s(previous: int, current: int, limit: int, elapsed: float) -> float:
    """When the estimate falls low enough for one more request, if no other comes meanwhile."""
    room = limit - current - 1  # what last minute's weighted count must fall to, this minute
    if room >= 0 and previous > 0:
        at = 1 - room / previous
        if at < 1:
            return max(0.001, (at - elapsed) * PERIOD_S)
    # Next minute this minute's count becomes the weighted one.
    at_next = max(0.0, 1 - (limit - 1) / current) if current > 0 else 0.0
    return max(0.001, (1 - elapsed + at_next) * PERIOD_S)
