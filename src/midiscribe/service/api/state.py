"""What the API's routes share: settings, engine, store, limits; and the key check."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from midiscribe.service.api.errors import ApiError
from midiscribe.service.outside.fetch import FetchPolicy
from midiscribe.service.outside.storage import ObjectStore
from midiscribe.service.records.keys import ApiKey, lookup
from midiscribe.service.settings import Settings
from midiscribe.service.work.dispatch import Dispatcher, EmbeddedDispatcher


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, bursts up to the same number.

    Its one call site is ``limiter.allow(key_id) -> seconds to wait`` (convert.py), so a limiter
    shared by several API nodes can replace it (issue 12)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key_id: str) -> float:
        """0 if allowed, else seconds until the next request would be."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key_id] = (tokens - 1, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / self.rate


@dataclass
class AppState:
    settings: Settings
    engine: Any
    store: ObjectStore
    policy: FetchPolicy
    limiter: RateLimiter
    workers_alive: Callable[[], bool] = field(default=lambda: True)
    dispatcher: Dispatcher = field(default_factory=EmbeddedDispatcher)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.midiscribe
    return state


# Declares the scheme in the OpenAPI document; the check itself is require_key's.
API_KEY_SCHEME = APIKeyHeader(
    name="Authorization",
    scheme_name="ApiKey",
    description="The API key as created by `midiscribe keys create`: `<key>` or `Bearer <key>`",
    auto_error=False,
)


async def require_key(request: Request, _declared: str | None = Depends(API_KEY_SCHEME)) -> ApiKey:
    """The caller's key from ``Authorization: <key>`` or ``Authorization: Bearer <key>``."""
    header = request.headers.get("authorization", "").strip()
    if header.lower().startswith("bearer "):
        header = header[7:].strip()
    if not header:
        raise ApiError(401, "unauthorized", "missing API key: send it in the Authorization header")
    state = app_state(request)
    key = await run_in_threadpool(lookup, state.engine, header)
    if key is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key")
    return key
