"""What the API's routes share: settings, engine, store, the rate limiter (``ratelimit.py``); the key check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from midiscribe.service.api.errors import ApiError
from midiscribe.service.api.ratelimit import RateLimiter
from midiscribe.service.outside.fetch import FetchPolicy
from midiscribe.service.outside.storage import ObjectStore
from midiscribe.service.records.keys import ApiKey, lookup
from midiscribe.service.settings import Settings
from midiscribe.service.work.dispatch import Dispatcher, EmbeddedDispatcher


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
