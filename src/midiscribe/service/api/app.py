"""create_app(settings): the FastAPI application, with errors mapped to HTTP in one place."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from midiscribe import __version__
from midiscribe.errors import MidiscribeError
from midiscribe.service.api import convert, files, notes, web
from midiscribe.service.api import metrics as metrics_api
from midiscribe.service.api import tasks as tasks_api
from midiscribe.service.api.errors import ApiError, to_api_error
from midiscribe.service.api.schemas import WEBHOOK_EXAMPLE, WebhookPayload
from midiscribe.service.api.state import AppState, RateLimiter
from midiscribe.service.payloads import error_body
from midiscribe.service.settings import Settings
from midiscribe.service.wiring import build_engine, build_store, fetch_policy
from midiscribe.service.work.dispatch import Dispatcher, build_dispatcher

log = logging.getLogger("midiscribe.api")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        mb = self.limit / (1024 * 1024)
        body = error_body("input_too_large", f"the request body is larger than the limit of {mb:.0f} MB")
        await JSONResponse(body, status_code=413, headers={"connection": "close"})(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(
    settings: Settings,
    *,
    workers_alive: Callable[[], bool] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    dispatcher: Dispatcher | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """The API. ``on_shutdown`` runs when the server stops (before uvicorn re-raises a signal).

    ``engine`` and ``dispatcher`` default to new ones built from ``settings``.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    app = FastAPI(
        title="midiscribe",
        version=__version__,
        description="Audio to MIDI, compatible with the audio_to_midi API: change only the base URL.",
        lifespan=lifespan,
    )
    engine = engine or build_engine(settings)
    dispatcher = dispatcher or build_dispatcher(settings)
    app.state.midiscribe = AppState(
        settings=settings,
        engine=engine,
        store=build_store(settings),
        policy=fetch_policy(settings),
        limiter=RateLimiter(settings.rate_limit_per_minute),
        workers_alive=workers_alive or dispatcher.healthy,
        dispatcher=dispatcher,
    )
    app.include_router(convert.router)
    app.include_router(tasks_api.router)
    app.include_router(files.router)
    app.include_router(notes.router)
    web.mount(app)
    metrics_api.install(app)
    _install_handlers(app)
    _document_webhook(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
        response = await call_next(request)
        response.headers["x-request-id"] = rid
        return response

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + 1024 * 1024)
    return app


def _document_webhook(app: FastAPI) -> None:
    """The webhook, in the OpenAPI document's ``webhooks`` section (documentation only)."""

    @app.webhooks.post(
        "audio_to_midi_result",
        summary="Sent to webhook_url when a task ends",
        description="Headers: `webhook-id` (the same on every retry), `webhook-timestamp`, `webhook-signature` "
        "(`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` with the key's `whsec_` secret).",
    )
    def audio_to_midi_result(
        body: WebhookPayload = Body(..., examples=[WEBHOOK_EXAMPLE]),  # noqa: B008
    ) -> None:
        """Answer 2xx within the timeout, or the delivery is retried."""


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, _rid(request)), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(MidiscribeError)
    async def our_error(request: Request, exc: MidiscribeError) -> JSONResponse:
        return await api_error(request, to_api_error(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(error_body("invalid_parameters", "; ".join(parts), _rid(request)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail), _rid(request)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = _rid(request) or uuid.uuid4().hex
        log.exception("unexpected error (request %s)", rid)
        body = error_body("internal_error", "an unexpected error occurred; quote the request id when reporting it", rid)
        return JSONResponse(body, status_code=500)
