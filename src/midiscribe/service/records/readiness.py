"""``/readyz``'s database check: a real write and read-back, not ``SELECT 1`` (a locked or
read-only database passes a SELECT and still fails every submission)."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select

from midiscribe.service.records.db import readiness, utcnow


def check_write(engine: Engine, node: str) -> None:
    """Write this node's row and read it back in one transaction; raises if either fails."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(delete(readiness).where(readiness.c.node == node))
        conn.execute(insert(readiness).values(node=node, checked_at=now))
        seen = conn.execute(select(readiness.c.checked_at).where(readiness.c.node == node)).scalar()
    if seen is None:
        raise RuntimeError("the database did not return the row just written")
