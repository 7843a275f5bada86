"""Webhooks signed per the Standard Webhooks specification, delivered concurrently with retries.

Each completed or failed task with a ``webhook_url`` gets one delivery row with a fixed
``webhook-id``; every attempt (and every repeat after a crash) carries that id, so
receivers can de-duplicate. Attempts are recorded before they are sent and shown by the task
status endpoint (``records/deliveries.py``).

Deliveries go out from a bounded pool of threads (``webhook_concurrency``), at most
``webhook_concurrency_per_endpoint`` at a time to one endpoint (scheme, host and port), so an
endpoint that hangs holds only its own slots: other receivers' webhooks and its own retries keep
their schedule (issue 12).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine, select

from midiscribe import __version__
from midiscribe.service.logs import Outage
from midiscribe.service.outside.fetch import FetchError, FetchPolicy, check_url
from midiscribe.service.records import deliveries
from midiscribe.service.records.db import tasks, utcnow
from midiscribe.service.records.keys import get_key
from midiscribe.service.settings import Settings
from midiscribe.webhooks import sign, verify

__all__ = ["WebhookSender", "sign", "verify"]  # sign and verify live in midiscribe.webhooks (pure, public)

log = logging.getLogger("midiscribe.webhooks")


def endpoint_of(url: str) -> tuple[str, str]:
    """(the endpoint a URL names: scheme, host and port; the URL's own text up to its path)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:
        port = 0
    prefix = url[: len(parts.scheme) + 3 + len(parts.netloc)] + "/"
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}", prefix


class WebhookSender:
    """Polls due deliveries and sends them from a pool of threads; one per service process that
    sends webhooks (several processes share the work through the claim on each delivery)."""

    def __init__(self, engine: Engine, settings: Settings, policy: FetchPolicy) -> None:
        self.engine, self.settings, self.policy = engine, settings, policy
        self.size = settings.webhook_concurrency
        self.per_endpoint = min(settings.webhook_concurrency_per_endpoint, self.size)
        self._stop = threading.Event()
        self._wake = threading.Event()  # a slot came free
        self._lock = threading.Lock()
        self._held: dict[int, tuple[int, str]] = {}  # delivery id -> (attempt, endpoint)
        self._leases: dict[int, datetime] = {}  # delivery id -> when its lease ends
        self._busy: Counter[str] = Counter()  # endpoint -> attempts in flight
        self._prefixes: dict[str, str] = {}  # endpoint -> a URL prefix of it, to skip in the query
        self._work: queue.Queue[tuple[Any, int] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._client = httpx.Client(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=self.size, max_keepalive_connections=self.size),
            headers={"user-agent": f"midiscribe/{__version__}", "content-type": "application/json"},
        )

    def run_forever(self) -> None:
        self._start_threads()
        renewed = time.monotonic()
        outage = Outage(log, "webhook sender: reading deliveries")
        while not self._stop.is_set():
            try:
                if time.monotonic() - renewed >= self.settings.webhook_lease_s / 3:
                    renewed = time.monotonic()
                    self._renew()
                sent = self.run_due()
                outage.ok()
            except Exception as exc:  # keep the loop alive; the database may be briefly unavailable
                outage.failed(exc)
                sent = 0
            if not sent:
                self._wake.wait(min(0.5, self.settings.poll_interval_s))
                self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for _ in self._threads:
            self._work.put(None)

    def _start_threads(self) -> None:
        if self._threads:
            return
        for i in range(self.size):
            thread = threading.Thread(target=self._sending, name=f"webhook-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._held)

    def run_due(self) -> int:
        """Claim as many due deliveries as there are free slots and hand them to the pool."""
        self._start_threads()
        with self._lock:
            free = self.size - len(self._held)
            full = [self._prefixes[e] for e, n in self._busy.items() if n >= self.per_endpoint][:50]
        if free <= 0:
            return 0
        started = 0
        for row in deliveries.due(self.engine, limit=free + 50, skip_prefixes=full):
            endpoint, prefix = endpoint_of(row.url)
            with self._lock:
                if self._busy[endpoint] >= self.per_endpoint or row.id in self._held:
                    continue
            claimed = deliveries.claim(self.engine, row, self.settings.webhook_lease_s)
            if claimed is None:  # another sender took it
                continue
            attempt, until = claimed
            with self._lock:
                self._held[row.id] = (attempt, endpoint)
                self._leases[row.id] = until
                self._busy[endpoint] += 1
                self._prefixes[endpoint] = prefix
            self._work.put((row, attempt))
            started += 1
            if started >= free:
                break
        return started

    def _renew(self) -> None:
        with self._lock:
            held = [(i, a, self._leases[i]) for i, (a, _) in self._held.items()]
        until = deliveries.renew(self.engine, held, self.settings.webhook_lease_s)
        with self._lock:
            for i, _, _ in held:
                if i in self._leases:
                    self._leases[i] = until

    def _sending(self) -> None:
        while (item := self._work.get()) is not None:
            row, attempt = item
            try:
                self._attempt(row, attempt)
            except Exception as exc:  # the database is down: the lease runs out and it is re-sent
                cause = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                log.warning("webhook for task %s attempt %d not sent or not recorded (%s)", row.task_id, attempt, cause)
            finally:
                with self._lock:
                    _, endpoint = self._held.pop(row.id)
                    self._leases.pop(row.id, None)
                    self._busy[endpoint] -= 1
                    if not self._busy[endpoint]:
                        del self._busy[endpoint], self._prefixes[endpoint]
                self._wake.set()

    def _attempt(self, row: Any, attempt: int) -> None:
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
        retry_at = None
        if error is not None and attempt < len(schedule):  # the schedule counts from this attempt's end
            jitter = 1 + random.uniform(-self.settings.webhook_jitter, self.settings.webhook_jitter)
            retry_at = utcnow() + timedelta(seconds=schedule[attempt] * jitter)
        deliveries.record(
            self.engine, row.id, attempt, status_code=status_code, error=error, duration_ms=ms, retry_at=retry_at
        )
        if error:
            log.warning("webhook for task %s attempt %d failed: %s", row.task_id, attempt, error)
        else:
            log.info("webhook for task %s delivered on attempt %d", row.task_id, attempt)
