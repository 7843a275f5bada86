"""Webhooks signed per the Standard Webhooks specification, delivered with retries.

Each completed or failed task with a ``webhook_url`` gets one delivery row with a fixed
``webhook-id``; every attempt (and every repeat after a crash) carries that id, so
receivers can de-duplicate. Attempts are recorded and shown by the task status endpoint.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, insert, select, update

from midiscribe import __version__
from midiscribe.service.outside.fetch import FetchError, FetchPolicy, check_url
from midiscribe.service.records.db import tasks, utcnow, webhook_attempts, webhook_deliveries
from midiscribe.service.records.keys import get_key
from midiscribe.service.settings import Settings
from midiscribe.webhooks import sign, verify

__all__ = ["WebhookSender", "sign", "verify"]  # sign and verify live in midiscribe.webhooks (pure, public)

log = logging.getLogger("midiscribe.webhooks")


class WebhookSender:
    """Polls due deliveries and sends them; one per service process that sends webhooks."""

    def __init__(self, engine: Engine, settings: Settings, policy: FetchPolicy) -> None:
        self.engine, self.settings, self.policy = engine, settings, policy
        self._stop = threading.Event()
        self._client = httpx.Client(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            headers={"user-agent": f"midiscribe/{__version__}", "content-type": "application/json"},
        )

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_due()
            except Exception:  # keep the loop alive; the database may be briefly unavailable
                log.exception("webhook loop error")
                sent = 0
            if not sent:
                self._stop.wait(min(0.5, self.settings.poll_interval_s))

    def stop(self) -> None:
        self._stop.set()

    def run_due(self, limit: int = 20) -> int:
        now = utcnow()
        with self.engine.connect() as conn:
            due = conn.execute(
                select(webhook_deliveries)
                .where(webhook_deliveries.c.state == "pending", webhook_deliveries.c.next_attempt_at <= now)
                .order_by(webhook_deliveries.c.next_attempt_at)
                .limit(limit)
            ).all()
        sent = 0
        for row in due:
            if self._claim(row):
                self._attempt(row)
                sent += 1
        return sent

    def _claim(self, row: Any) -> bool:
        """Push next_attempt_at past the attempt's timeout so no other sender takes it meanwhile."""
        hold = utcnow() + timedelta(seconds=self.settings.webhook_timeout_s + 30)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == row.id,
                    webhook_deliveries.c.next_attempt_at == row.next_attempt_at,
                )
                .where(webhook_deliveries.c.state == "pending")
                .values(next_attempt_at=hold)
            )
        return bool(result.rowcount)

    def _attempt(self, row: Any) -> None:
        attempt = row.attempt_count + 1
        status_code: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            check_url(row.url, self.policy)
            status_code = self._post(row)
            if not 200 <= status_code < 300:
                error = f"receiver answered HTTP {status_code}"
        except FetchError as exc:
            error = str(exc)
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.webhook_timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"delivery failed: {type(exc).__name__}"
        self._record(row, attempt, status_code, error, int((time.monotonic() - started) * 1000))

    def _post(self, row: Any) -> int:
        body = row.payload.encode()
        with self.engine.connect() as conn:
            key_id = conn.execute(select(tasks.c.key_id).where(tasks.c.id == row.task_id)).scalar_one()
        key = get_key(self.engine, key_id)
        ts = int(time.time())
        headers = {"webhook-id": row.webhook_id, "webhook-timestamp": str(ts)}
        if key is not None:
            headers["webhook-signature"] = sign(key.webhook_secret, row.webhook_id, ts, body)
        return self._client.post(row.url, content=body, headers=headers).status_code

    def _record(self, row: Any, attempt: int, status_code: int | None, error: str | None, ms: int) -> None:
        schedule = self.settings.webhook_schedule_s
        values: dict[str, Any] = {"attempt_count": attempt}
        if error is None:
            values |= {"state": "delivered", "delivered_at": utcnow(), "next_attempt_at": None}
        elif attempt >= len(schedule):
            values |= {"state": "failed", "next_attempt_at": None}
        else:
            jitter = 1 + random.uniform(-self.settings.webhook_jitter, self.settings.webhook_jitter)
            values["next_attempt_at"] = utcnow() + timedelta(seconds=schedule[attempt] * jitter)
        with self.engine.begin() as conn:
            conn.execute(
                insert(webhook_attempts).values(
                    delivery_id=row.id,
                    attempt=attempt,
                    at=utcnow(),
                    status_code=status_code,
                    error=error,
                    duration_ms=ms,
                )
            )
            conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == row.id).values(**values))
        if error:
            log.warning("webhook for task %s attempt %d failed: %s", row.task_id, attempt, error)
        else:
            log.info("webhook for task %s delivered on attempt %d", row.task_id, attempt)
