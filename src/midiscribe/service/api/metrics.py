"""GET /metrics: Prometheus text format; and the middleware that counts requests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from midiscribe.service import metrics
from midiscribe.service.api.state import AppState
from midiscribe.service.records import tasks

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    body = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    """Mount ``/metrics`` and count every request by method, route template and status."""
    state: AppState = app.state.midiscribe
    collector = metrics.StateCollector(lambda: tasks.counts_by_status(state.engine), state.dispatcher.queue_depths)
    app.state.metrics_registry = metrics.registry(collector)
    app.include_router(router)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.observe_request(request.method, route, status, time.perf_counter() - started)
