"""Worker heartbeats: each worker node's row in ``worker_heartbeats``, written by its watchdog and
read by ``/readyz``. A node that stops beating is gone; one that beats but says ``deaf`` is alive and
not taking work (issue 12, defects 1 and 5)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, insert, select, update

from midiscribe.service.records.db import utcnow, worker_heartbeats

STATES = ("listening", "broker_down", "deaf", "stopped")


@dataclass(frozen=True)
class Beat:
    name: str
    queues: str
    concurrency: int
    busy: int
    state: str
    started_at: dt.datetime
    consumed_at: dt.datetime | None


def beat(engine: Engine, b: Beat) -> None:
    """Record this node's state now (an update, or the first insert)."""
    values = {
        "queues": b.queues[:300],
        "concurrency": b.concurrency,
        "busy": b.busy,
        "state": b.state,
        "started_at": b.started_at,
        "beat_at": utcnow(),
        "consumed_at": b.consumed_at,
    }
    with engine.begin() as conn:
        found = conn.execute(
            update(worker_heartbeats).where(worker_heartbeats.c.name == b.name).values(**values)
        ).rowcount
        if not found:
            conn.execute(insert(worker_heartbeats).values(name=b.name[:200], **values))


def live(engine: Engine, stale_after_s: float, forget_after_s: float = 24 * 3600.0) -> list[dict[str, object]]:
    """The nodes that beat within ``stale_after_s``, each with its state, busy slots and seconds since
    its last beat and last received task; rows of nodes gone over ``forget_after_s`` are removed."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            delete(worker_heartbeats).where(worker_heartbeats.c.beat_at < now - timedelta(seconds=forget_after_s))
        )
        rows = conn.execute(
            select(worker_heartbeats)
            .where(worker_heartbeats.c.beat_at >= now - timedelta(seconds=stale_after_s))
            .order_by(worker_heartbeats.c.name)
        ).all()
    return [
        {
            "name": r.name,
            "state": r.state,
            "queues": r.queues,
            "busy": r.busy,
            "concurrency": r.concurrency,
            "beat_s_ago": round((now - r.beat_at).total_seconds(), 1),
            "consumed_s_ago": round((now - r.consumed_at).total_seconds(), 1) if r.consumed_at else None,
        }
        for r in rows
        if r.state != "stopped"
    ]


def summary(nodes: list[dict[str, object]]) -> str:
    """``/readyz``'s "workers" check: ok when every live node listens, degraded when some do, else an error."""
    listening = [n for n in nodes if n["state"] == "listening"]
    others = [f"{n['name']} {n['state']}" for n in nodes if n["state"] != "listening"]
    if not nodes:
        return "error: no worker has sent a heartbeat lately"
    if not listening:
        return f"error: no worker is taking tasks ({', '.join(others)})"
    busy = sum(int(str(n["busy"])) for n in listening)
    text = f"{len(listening)} listening ({busy} busy)"
    return f"degraded: {text}; {', '.join(others)}" if others else "ok"
