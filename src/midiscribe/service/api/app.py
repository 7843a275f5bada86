"""create_app(settings): the FastAPI application, with errors mapped to HTTP in one place."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from midiscribe import __version__
from midiscribe.errors import MidiscribeError
from midiscribe.service.api import convert, files, notes, openapi, web
from midiscribe.service.api import metrics as metrics_api
from midiscribe.service.api import tasks as tasks_api
from midiscribe.service.api.errors import ApiError, to_api_error
from midiscribe.service.api.outages import OutageLog, classify
from midiscribe.service.api.ratelimit import build_limiter
from midiscribe.service.api.schemas import WEBHOOK_EXAMPLE, WebhookPayload
from midiscribe.service.api.state import AppState
from midiscribe.service.payloads import error_body
from midiscribe.service.settings import Settings
from midiscribe.service.wiring import build_engine, build_store, fetch_policy
from midiscribe.service.work.dispatch import Dispatcher, build_dispatcher
from midiscribe.service.work.retention import RetentionSweeper
from midiscribe.service.workdir import sweep as sweep_work

log = logging.getLogger("midiscribe.api")


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` if it is a sane token, else a new one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.fullmatch(text) else uuid.uuid4().hex
    return uuid.uuid4().hex


class Guard:
    """The outermost layer: a request id on every request and answer, and any exception the
    routes let through answered in the envelope — 503 ``unavailable`` (with ``Retry-After``, logged
    once per outage) when a dependency is down, else 500 ``internal_error`` — with
    ``Connection: close``, and never re-raised, so the server never resets a kept-alive connection."""

    def __init__(self, app: ASGIApp, outages: OutageLog) -> None:
        self.app, self.outages = app, outages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)["x-request-id"] = rid
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection is honest now
                log.exception("error after the response started (request %s)", rid)
                raise
            await self._answer(exc, rid)(scope, receive, sending)

    def _answer(self, exc: Exception, rid: str) -> JSONResponse:
        unavailable = classify(exc)
        if unavailable is not None:
            self.outages.failed(unavailable)
            status, code, message, headers = 503, unavailable.code, unavailable.message, unavailable.headers
        else:
            log.error("unexpected error (request %s)", rid, exc_info=exc)
            status, code, headers = 500, "internal_error", {}
            message = "an unexpected error occurred; quote the request id when reporting it"
        return JSONResponse(
            error_body(code, message, rid), status_code=status, headers={**headers, "connection": "close"}
        )


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not Content-Length is sent.

    The backstop for every route; uploads are also held to ``max_upload_bytes`` exactly, while
    streaming (``bodies.py``)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
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
        rid = scope.get("state", {}).get("request_id")
        body = error_body("input_too_large", f"the request body is over the limit of {self.limit} bytes", rid)
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
        await run_in_threadpool(sweep_work, settings.work_path)  # leftovers of killed processes
        retention = RetentionSweeper(settings, state.engine, state.store)
        retention.start()
        yield
        retention.stop()
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    app = FastAPI(
        title="midiscribe",
        version=__version__,
        description="Audio to MIDI, compatible with the audio_to_midi API: change only the base URL.",
        lifespan=lifespan,
    )
    engine = engine or build_engine(settings, busy_timeout_s=settings.database_busy_timeout_s)
    dispatcher = dispatcher or build_dispatcher(settings)
    app.state.midiscribe = state = AppState(
        settings=settings,
        engine=engine,
        store=build_store(settings),
        policy=fetch_policy(settings),
        limiter=build_limiter(settings, engine),
        workers_alive=workers_alive or dispatcher.healthy,
        dispatcher=dispatcher,
    )
    app.include_router(convert.router)
    app.include_router(tasks_api.router)
    app.include_router(files.router)
    app.include_router(notes.router)
    web.mount(app)
    metrics_api.install(app)
    outages = OutageLog()
    _install_handlers(app, outages)
    _document_webhook(app)
    openapi.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + 1024 * 1024)
    app.add_middleware(Guard, outages=outages)  # last added: outermost
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


def _install_handlers(app: FastAPI, outages: OutageLog) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers)
        if exc.status == 413:  # the rest of the body was not read: this connection cannot be reused
            headers["connection"] = "close"
        if exc.status == 503 and (unavailable := classify(exc)) is not None:
            outages.failed(unavailable)
        return JSONResponse(error_body(exc.code, exc.message, _rid(request)), status_code=exc.status, headers=headers)

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
        message = {404: "no such endpoint", 405: f"method {request.method[:20]} is not allowed here"}.get(
            exc.status_code, str(exc.detail)
        )
        return JSONResponse(error_body(code, message, _rid(request)), status_code=exc.status_code, headers=exc.headers)
