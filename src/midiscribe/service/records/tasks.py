"""Task records: create, claim with a lease, renew, finish. The only code that writes tasks.

Claiming is one conditional UPDATE (``WHERE id = ? AND (queued OR lease expired)``), atomic on
SQLite and PostgreSQL alike, so two workers never both win a task; a worker that vanished
stops renewing its lease and the task is claimed again.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update

from midiscribe.service.records import deliveries, idempotency, usage
from midiscribe.service.records.db import tasks, utcnow, webhook_attempts, webhook_deliveries

ACTIVE = ("queued", "processing")
FINISHED = ("completed", "failed", "cancelled")


def create_task(
    engine: Engine,
    *,
    key_id: str,
    request: dict[str, Any],
    input_kind: str,
    input_ref: str,
    input_name: str,
    webhook_url: str,
    task_id: str | None = None,
    input_duration_s: float | None = None,
    idempotency_key: tuple[str, str, float] | None = None,
) -> str:
    """Record a queued task; with ``idempotency_key`` (key, request hash, ttl) in the same
    transaction (IntegrityError: that key is live already, and no task was created)."""
    task_id = task_id or str(uuid.uuid4())
    now = utcnow()
    with engine.begin() as conn:
        if idempotency_key is not None:
            idempotency.remember(conn, key_id, idempotency_key[0], idempotency_key[1], task_id, idempotency_key[2])
        conn.execute(
            insert(tasks).values(
                id=task_id,
                conversion_id=str(uuid.uuid4()),
                key_id=key_id,
                status="queued",
                progress=0,
                request=request,
                input_kind=input_kind,
                input_ref=input_ref,
                input_name=input_name,
                webhook_url=webhook_url,
                attempts=0,
                input_duration_s=input_duration_s,
                dispatch_count=0,
                created_at=now,
                updated_at=now,
            )
        )
    return task_id


def active_count(engine: Engine, key_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(tasks).where(tasks.c.key_id == key_id, tasks.c.status.in_(ACTIVE))
            ).scalar_one()
        )


def get_task(engine: Engine, task_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(tasks).where(tasks.c.id == task_id)).first()


def list_tasks(engine: Engine, key_id: str, *, limit: int, offset: int) -> tuple[list[Any], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(tasks)
            .where(tasks.c.key_id == key_id)
            .order_by(tasks.c.created_at.desc(), tasks.c.id)
            .limit(limit)
            .offset(offset)
        ).all()
        total = conn.execute(select(func.count()).select_from(tasks).where(tasks.c.key_id == key_id)).scalar_one()
    return list(rows), int(total)


def webhook_log(engine: Engine, task_id: str) -> tuple[Any, list[Any]]:
    with engine.connect() as conn:
        delivery = conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.task_id == task_id)).first()
        attempts = []
        if delivery is not None:
            attempts = list(
                conn.execute(
                    select(webhook_attempts)
                    .where(webhook_attempts.c.delivery_id == delivery.id)
                    .order_by(webhook_attempts.c.attempt)
                ).all()
            )
    return delivery, attempts


def _claimable(now: Any) -> Any:
    return or_(
        tasks.c.status == "queued",
        and_(tasks.c.status == "processing", tasks.c.lease_until < now),
    )


def next_claimable(engine: Engine) -> str | None:
    """The oldest task that is queued or whose holder's lease ran out."""
    with engine.connect() as conn:
        found = conn.execute(
            select(tasks.c.id).where(_claimable(utcnow())).order_by(tasks.c.created_at).limit(1)
        ).scalar()
    return str(found) if found is not None else None


def claim(engine: Engine, task_id: str, owner: str, lease_s: float) -> Any:
    """Take this task if it is queued or its lease ran out; the task row, or None if another holds it."""
    now = utcnow()
    with engine.begin() as conn:
        won = conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, _claimable(now))
            .values(
                status="processing",
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease_s),
                attempts=tasks.c.attempts + 1,
                started_at=func.coalesce(tasks.c.started_at, now),
                updated_at=now,
            )
        ).rowcount
    return get_task(engine, task_id) if won else None


def renew(engine: Engine, task_id: str, owner: str, lease_s: float, progress: int | None = None) -> bool:
    """Extend the lease (and record progress); False if this worker no longer holds the task."""
    now = utcnow()
    values: dict[str, Any] = {"lease_until": now + timedelta(seconds=lease_s), "updated_at": now}
    if progress is not None:
        values["progress"] = progress
    with engine.begin() as conn:
        result = conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.lease_owner == owner, tasks.c.status == "processing")
            .values(**values)
        )
    return bool(result.rowcount)


def release(engine: Engine, task_id: str, owner: str) -> None:
    """Give a task back to the queue (a worker stopping cleanly mid-task)."""
    with engine.begin() as conn:
        conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.lease_owner == owner, tasks.c.status == "processing")
            .values(status="queued", lease_owner=None, lease_until=None, progress=0, attempts=tasks.c.attempts - 1)
        )


def finish(
    engine: Engine, task_id: str, owner: str | None, *, values: dict[str, Any], webhook: dict[str, Any] | None
) -> bool:
    """Mark a task completed or failed and enqueue its webhook, in one transaction.

    With an ``owner``, only if that worker still holds the task: a worker whose lease was
    taken over does not write over the new holder's result.
    """
    now = utcnow()
    condition = [tasks.c.id == task_id, tasks.c.status.in_(ACTIVE)]
    if owner is not None:
        condition.append(tasks.c.lease_owner == owner)
    with engine.begin() as conn:
        done = conn.execute(
            update(tasks)
            .where(*condition)
            .values(**values, lease_owner=None, lease_until=None, finished_at=now, updated_at=now)
        ).rowcount
        if done and values.get("status") == "completed" and values.get("duration_s"):
            key_id = conn.execute(select(tasks.c.key_id).where(tasks.c.id == task_id)).scalar_one()
            usage.record(conn, key_id, float(values["duration_s"]))
        if done and webhook is not None:
            row = conn.execute(select(tasks.c.webhook_url).where(tasks.c.id == task_id)).scalar_one()
            if row:
                deliveries.enqueue(conn, task_id, row, webhook)
    return bool(done)


# --- cancel, delete and retention (issue 11) ---------------------------------------------


def cancel(engine: Engine, task_id: str, webhook: dict[str, Any]) -> bool:
    """Cancel a queued or running task and enqueue its "cancelled" webhook, in one transaction.

    A running task's worker sees it at its next progress step (its lease renewal fails) and stops.
    False if the task had finished already."""
    values = {
        "status": "cancelled",
        "error_status": 409,
        "error_code": "task_cancelled",
        "error_message": "the task was cancelled by its owner",
    }
    return finish(engine, task_id, None, values=values, webhook=webhook)


def is_cancelled(engine: Engine, task_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar() == "cancelled"


def mark_files_deleted(engine: Engine, task_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.files_deleted_at.is_(None))
            .values(files_deleted_at=utcnow())
        )


def expired(engine: Engine, ttl_s: float, limit: int = 200) -> list[Any]:
    """Finished tasks older than ``ttl_s`` whose files are still stored, oldest first."""
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(tasks)
                .where(tasks.c.status.in_(FINISHED), tasks.c.finished_at < cutoff, tasks.c.files_deleted_at.is_(None))
                .order_by(tasks.c.finished_at)
                .limit(limit)
            ).all()
        )


# --- distributed: publishing to the broker (dispatch.py) -----------------------------------


def mark_dispatched(engine: Engine, task_id: str, previous: datetime | None) -> datetime | None:
    """Record a publish if nobody else recorded one since ``previous``; the new time, or None if
    another API node got there first (so two sweeps never both re-publish a task)."""
    now = utcnow()
    same = tasks.c.dispatched_at.is_(None) if previous is None else tasks.c.dispatched_at == previous
    with engine.begin() as conn:
        won = conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, same)
            .values(dispatched_at=now, dispatch_count=tasks.c.dispatch_count + 1)
        ).rowcount
    return now if won else None


def unmark_dispatched(engine: Engine, task_id: str, marked: datetime, previous: datetime | None) -> None:
    """Undo :func:`mark_dispatched` after a failed publish, so the next sweep tries again at once."""
    with engine.begin() as conn:
        conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.dispatched_at == marked)
            .values(dispatched_at=previous, dispatch_count=tasks.c.dispatch_count - 1)
        )


def claimable_ids(engine: Engine, limit: int = 20_000) -> list[str]:
    """Tasks that are queued or whose holder's lease ran out (the sweep compares them with the broker)."""
    with engine.connect() as conn:
        rows = conn.execute(select(tasks.c.id).where(_claimable(utcnow())).limit(limit)).scalars()
        return [str(r) for r in rows]


def redispatch_candidates(
    engine: Engine, *, grace_s: float, after_s: float, lost: set[str] | None = None, limit: int = 200
) -> list[Any]:
    """Claimable tasks whose message may be lost: never published (the API died or the broker was
    down), or running on a lease that ran out after the last publish (the holder vanished); and
    queued ones the broker lost — those in ``lost`` when the sweep could read the broker (a task
    only waiting in the queue is left alone, issue 12 defect 7), else those published
    ``after_s * 2**(n-1)`` ago and still queued (the backoff bounds duplicates behind a backlog)."""
    now = utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                tasks.c.id,
                tasks.c.status,
                tasks.c.lease_until,
                tasks.c.dispatched_at,
                tasks.c.dispatch_count,
                tasks.c.input_duration_s,
            )
            .where(_claimable(now), tasks.c.created_at < now - timedelta(seconds=grace_s))
            .order_by(tasks.c.created_at)
            .limit(limit)
        ).all()

    def due(row: Any) -> bool:
        if row.dispatched_at is None:
            return True
        if row.status == "processing" and row.dispatched_at < row.lease_until:
            return True
        if lost is not None:
            return row.id in lost and bool(row.dispatched_at < now - timedelta(seconds=grace_s))
        backoff = after_s * 2 ** min(max(row.dispatch_count - 1, 0), 6)
        return bool(row.dispatched_at < now - timedelta(seconds=backoff))

    return [row for row in rows if due(row)]


def counts_by_status(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(tasks.c.status, func.count()).group_by(tasks.c.status)).all()
    return {str(status): int(n) for status, n in rows}
