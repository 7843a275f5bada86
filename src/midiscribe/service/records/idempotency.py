"""``Idempotency-Key`` records: (API key, idempotency key) -> the request's hash and its task.

Written in the same transaction as the task (``tasks.create_task``), so a task exists exactly when
its key is recorded; a retry after a timeout or a 503 finds it. Kept ``idempotency_ttl_s``
(24 h by default) and then deleted by the retention sweep.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from midiscribe.service.records.db import idempotency_keys, utcnow


def find(engine: Engine, key_id: str, idempotency_key: str, ttl_s: float) -> Any:
    """The live record (``request_hash``, ``task_id``, ``created_at``) or None."""
    since = utcnow() - dt.timedelta(seconds=ttl_s)
    with engine.connect() as conn:
        return conn.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.key_id == key_id,
                idempotency_keys.c.idempotency_key == idempotency_key,
                idempotency_keys.c.created_at >= since,
            )
        ).first()


def remember(
    conn: Connection, key_id: str, idempotency_key: str, request_hash: str, task_id: str, ttl_s: float
) -> None:
    """Record a key (inside the task's transaction); an expired record of the same key is replaced.

    A live one raises IntegrityError: another request with this key won the race."""
    since = utcnow() - dt.timedelta(seconds=ttl_s)
    conn.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.key_id == key_id,
            idempotency_keys.c.idempotency_key == idempotency_key,
            idempotency_keys.c.created_at < since,
        )
    )
    conn.execute(
        insert(idempotency_keys).values(
            key_id=key_id,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            task_id=task_id,
            created_at=utcnow(),
        )
    )


def purge(engine: Engine, ttl_s: float) -> int:
    """Delete records older than ``ttl_s``; how many."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < utcnow() - dt.timedelta(seconds=ttl_s))
        )
    return int(result.rowcount)
