"""Per-key rate limits that hold across every API node (issue 12, defect 8).

Behind a load balancer with N API nodes, counters kept in each process would give a key N times
its rate; so the counters live where every node sees them:

- ``redis``: the ``limits`` package's moving window (exact: at most N requests in any 60 s) in Redis,
  the broker's own server unless ``RATE_LIMIT_REDIS_URL`` names another. If Redis cannot be reached
  the limiter lets requests through (logged once per outage; Redis asked again after 5 s): a limiter
  is no reason to refuse work the database can still take.
- ``database``: a sliding-window counter in the task database (``records/ratelimits.py``); a
  database that is down answers 503 like every other request that needs it.
- ``memory``: the moving window in this process only; right for a single API process.

``auto`` (the default) takes ``redis`` when the broker is Redis, else ``database``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from sqlalchemy import Engine

from midiscribe.service.logs import Outage
from midiscribe.service.records import ratelimits
from midiscribe.service.settings import Settings

log = logging.getLogger("midiscribe.api")
_RETRY_REDIS_S = 5.0  # after Redis failed, let requests through without asking it for this long


class RateLimiter(Protocol):
    def allow(self, key_id: str) -> float:
        """0 if the request may go ahead (and it is counted), else seconds until one would."""


class WindowLimiter:
    """The ``limits`` package's moving window over one of its storages (Redis or memory)."""

    def __init__(self, per_minute: int, storage: Any, *, fail_open: bool = False) -> None:
        from limits import RateLimitItemPerMinute
        from limits.strategies import MovingWindowRateLimiter

        self.item = RateLimitItemPerMinute(per_minute)
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self.fail_open = fail_open
        self._outage = Outage(log, "rate limiter: Redis")
        self._lock = threading.Lock()
        self._skip_until = 0.0

    def allow(self, key_id: str) -> float:
        if self.fail_open and time.monotonic() < self._skip_until:  # Redis just failed: don't wait on it again
            return 0.0
        try:
            if self.strategy.hit(self.item, key_id):
                wait = 0.0
            else:
                wait = max(0.001, self.strategy.get_window_stats(self.item, key_id).reset_time - time.time())
        except Exception as exc:
            if not self.fail_open:
                raise
            with self._lock:
                self._outage.failed(exc)
                self._skip_until = time.monotonic() + _RETRY_REDIS_S
            return 0.0
        if self.fail_open:
            with self._lock:
                self._outage.ok()
        return wait


class DatabaseLimiter:
    """A sliding-window counter per key in the task database."""

    def __init__(self, per_minute: int, engine: Engine, prefix: str) -> None:
        self.per_minute, self.engine, self.prefix = per_minute, engine, prefix

    def allow(self, key_id: str) -> float:
        return ratelimits.hit(self.engine, f"{self.prefix}:{key_id}", self.per_minute)


def build_limiter(settings: Settings, engine: Engine) -> RateLimiter:
    """The limiter ``settings.rate_limit_backend`` names."""
    per_minute = settings.rate_limit_per_minute
    backend = settings.rate_limit_backend
    if backend == "database":
        return DatabaseLimiter(per_minute, engine, "submit")
    if backend == "memory":
        from limits.storage import MemoryStorage

        return WindowLimiter(per_minute, MemoryStorage())
    from limits.storage import RedisStorage

    # Short timeouts: a Redis that is down costs a request one second, not a hang.
    storage = RedisStorage(
        settings.rate_limit_redis,
        key_prefix=f"{settings.queue_prefix}.ratelimit",
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
    )
    return WindowLimiter(per_minute, storage, fail_open=True)
