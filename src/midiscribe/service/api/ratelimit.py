"""Per-key rate limits that hold across every API node (issue 12, defect 8).

Behind a load balancer with N API nodes, counters kept in each process would give a key N times
its rate; so the counters live where every node sees them. The rule is the same everywhere, a
token bucket in its GCRA form (``records/ratelimits.py``): ``RATE_LIMIT_PER_MINUTE`` requests in a
burst, then one every ``60 / RATE_LIMIT_PER_MINUTE`` s, ``Retry-After`` the wait for the next one.

- ``redis``: one key per API key in Redis (the broker's server unless ``RATE_LIMIT_REDIS_URL``
  names another), checked and moved by one Lua script on Redis's own clock, so the nodes' clocks
  do not matter. If Redis cannot be reached the limiter lets requests through (logged once per
  outage; Redis asked again after 5 s): a limiter is no reason to refuse work the database can
  still take.
- ``database``: one row per API key in the task database; a database that is down answers 503
  like every other request that needs it.
- ``memory``: in this process only; right for a single API process.

``auto`` (the default) takes ``redis`` when the broker is Redis, else ``database``.

Why not the ``limits`` package: its strategies are windows (fixed, moving, sliding counter), and a
window locks a key out for the rest of the minute after a burst, where the bucket lets it go on at
its rate; its ``redis`` extra also caps redis-py below the 8.x that Celery here is tested with.
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

# KEYS[1]: the bucket; ARGV: interval, period (seconds). Returns the wait as a string ("0": allowed).
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - period
if wait > 1e-9 then return tostring(wait) end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return '0'
"""


class RateLimiter(Protocol):
    def allow(self, key_id: str) -> float:
        """0 if the request may go ahead (and it is counted), else seconds until one would."""


class MemoryLimiter:
    """The bucket in this process."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key_id: str) -> float:
        with self._lock:
            self._tat[key_id], wait = ratelimits.gcra(self._tat.get(key_id, 0.0), time.time(), self.per_minute)
        return wait


class DatabaseLimiter:
    """The bucket as a row of the task database."""

    def __init__(self, per_minute: int, engine: Engine, prefix: str) -> None:
        self.per_minute, self.engine, self.prefix = per_minute, engine, prefix

    def allow(self, key_id: str) -> float:
        return ratelimits.hit(self.engine, f"{self.prefix}:{key_id}", self.per_minute)


class RedisLimiter:
    """The bucket as a Redis key, ``<prefix>:<key id>``."""

    def __init__(self, per_minute: int, url: str, prefix: str) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - the distributed extra brings it
            raise RuntimeError("Redis rate limits need redis-py: pip install 'midiscribe[distributed]'") from exc
        # Short timeouts: a Redis that is down costs a request a second, then is skipped for a while.
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self._script: Any = self._redis.register_script(_GCRA_LUA)
        self.interval, self.prefix = ratelimits.PERIOD_S / per_minute, prefix
        self._outage = Outage(log, "rate limiter: Redis")
        self._lock = threading.Lock()
        self._skip_until = 0.0

    def allow(self, key_id: str) -> float:
        if time.monotonic() < self._skip_until:
            return 0.0
        try:
            wait = float(self._script(keys=[f"{self.prefix}:{key_id}"], args=[self.interval, ratelimits.PERIOD_S]))
        except Exception as exc:
            with self._lock:
                self._outage.failed(exc)
                self._skip_until = time.monotonic() + _RETRY_REDIS_S
            return 0.0
        with self._lock:
            self._outage.ok()
        return max(0.001, wait) if wait > 0 else 0.0


def build_limiter(settings: Settings, engine: Engine) -> RateLimiter:
    """The limiter ``settings.rate_limit_backend`` names."""
    per_minute = settings.rate_limit_per_minute
    backend = settings.rate_limit_backend
    if backend == "database":
        return DatabaseLimiter(per_minute, engine, "submit")
    if backend == "memory":
        return MemoryLimiter(per_minute)
    return RedisLimiter(per_minute, settings.rate_limit_redis, f"{settings.queue_prefix}.ratelimit")
