"""Webhook delivery rows: one per task that has a ``webhook_url``, with a fixed ``webhook-id``,
and one attempt row per attempt, written *before* the request goes out (issue 12).

A delivery is written in the same transaction that finishes the task (``tasks.finish``), so a
finished task always has its delivery; ``outside/webhooks.py`` sends them. A sender claims a due
delivery by bumping ``attempt_count`` (the claim token: two senders cannot both win it) and holds
it with a short lease on ``next_attempt_at`` that it renews while the request is in flight. If the
sending node dies, the lease runs out within ``webhook_lease_s``, another sender (or the restarted
node) re-sends with the same ``webhook-id``, and the attempt that never got an answer is shown as
interrupted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, insert, not_, or_, select, update

from midiscribe.service.records.db import utcnow, webhook_attempts, webhook_deliveries

# What an attempt row says while its request is out, and once we know its node died meanwhile.
IN_FLIGHT = "sending: no answer yet"
INTERRUPTED = "interrupted: the sending node stopped before the receiver answered"


def enqueue(conn: Any, task_id: str, url: str, payload: dict[str, Any]) -> None:
    """Record a delivery (inside the caller's transaction); a repeat for the same task is ignored."""
    existing = conn.execute(select(webhook_deliveries.c.id).where(webhook_deliveries.c.task_id == task_id)).first()
    if existing is not None:
        return
    conn.execute(
        insert(webhook_deliveries).values(
            task_id=task_id,
            webhook_id=f"msg_{uuid.uuid4().hex}",
            url=url,
            payload=json.dumps(payload, separators=(",", ":")),
            state="pending",
            attempt_count=0,
            next_attempt_at=utcnow(),
            created_at=utcnow(),
        )
    )


def due(engine: Engine, *, limit: int, skip_prefixes: Sequence[str] = ()) -> list[Any]:
    """Pending deliveries whose time has come, oldest first; URLs starting with one of
    ``skip_prefixes`` (endpoints the caller has no room for) are left out."""
    query = select(webhook_deliveries).where(
        webhook_deliveries.c.state == "pending", webhook_deliveries.c.next_attempt_at <= utcnow()
    )
    if skip_prefixes:
        query = query.where(
            not_(or_(*(webhook_deliveries.c.url.startswith(p, autoescape=True) for p in skip_prefixes)))
        )
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(webhook_deliveries.c.next_attempt_at).limit(limit)).all())


def claim(engine: Engine, row: Any, lease_s: float) -> tuple[int, datetime] | None:
    """Take a due delivery for one attempt and record that attempt as in flight, in one
    transaction: (the attempt's number, the lease's end), or None if another sender took it first."""
    attempt = int(row.attempt_count) + 1
    now = utcnow()
    hold = now + timedelta(seconds=lease_s)
    with engine.begin() as conn:
        won = conn.execute(
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.id == row.id,
                webhook_deliveries.c.attempt_count == row.attempt_count,
                webhook_deliveries.c.state == "pending",
                webhook_deliveries.c.next_attempt_at <= now,
            )
            .values(attempt_count=attempt, next_attempt_at=hold)
        ).rowcount
        if not won:
            return None
        conn.execute(  # an earlier attempt still "in flight" lost its sender: say so
            update(webhook_attempts)
            .where(webhook_attempts.c.delivery_id == row.id, webhook_attempts.c.error == IN_FLIGHT)
            .values(error=INTERRUPTED)
        )
        conn.execute(
            insert(webhook_attempts).values(
                delivery_id=row.id, attempt=attempt, at=now, status_code=None, error=IN_FLIGHT, duration_ms=0
            )
        )
    return attempt, hold


def renew(engine: Engine, held: Iterable[tuple[int, int, datetime]], lease_s: float) -> datetime:
    """Extend the leases of attempts still in flight, given as (delivery id, attempt, lease end);
    the new end. A delivery whose attempt was recorded meanwhile no longer has that lease end,
    so its retry time is left alone."""
    until = utcnow() + timedelta(seconds=lease_s)
    held = list(held)
    if not held:
        return until
    c = webhook_deliveries.c
    mine = or_(*(and_(c.id == i, c.attempt_count == a, c.next_attempt_at == end) for i, a, end in held))
    with engine.begin() as conn:
        conn.execute(update(webhook_deliveries).where(mine, c.state == "pending").values(next_attempt_at=until))
    return until


def record(
    engine: Engine,
    delivery_id: int,
    attempt: int,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    retry_at: datetime | None,
) -> None:
    """An attempt's outcome: delivered (``error`` None), retried at ``retry_at``, or failed for good.

    A sender that lost its lease meanwhile (another one re-sent) still records its answer, and a
    success still marks the delivery delivered, but it does not reschedule the other's attempt."""
    with engine.begin() as conn:
        conn.execute(
            update(webhook_attempts)
            .where(webhook_attempts.c.delivery_id == delivery_id, webhook_attempts.c.attempt == attempt)
            .values(status_code=status_code, error=error, duration_ms=duration_ms)
        )
        pending = and_(webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.state == "pending")
        if error is None:
            values: dict[str, Any] = {"state": "delivered", "delivered_at": utcnow(), "next_attempt_at": None}
            conn.execute(update(webhook_deliveries).where(pending).values(**values))
            return
        values = {"next_attempt_at": retry_at} if retry_at is not None else {"state": "failed", "next_attempt_at": None}
        conn.execute(
            update(webhook_deliveries).where(pending, webhook_deliveries.c.attempt_count == attempt).values(**values)
        )
