"""Webhook delivery rows: one per task that has a ``webhook_url``, with a fixed ``webhook-id``.

Written in the same transaction that finishes the task (``tasks.finish``), so a finished task
always has its delivery; ``outside/webhooks.py`` sends them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import insert, select

from midiscribe.service.records.db import utcnow, webhook_deliveries


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
