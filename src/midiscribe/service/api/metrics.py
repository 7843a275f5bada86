"""GET /metrics: Prometheus text format; and the middleware that counts requests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from midiscribe.service import metrics
from midiscribe.service.api.state import AppState
from midiscribe.service.records import tasks, usage

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    body = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class UsageCollector:
    """Audio seconds processed per API key (in all, and today UTC), read from the database at each
    scrape: cluster-wide, the same on every node. Labelled by key id and name, never the key."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        try:
            rows = usage.totals(self.engine)
        except Exception as exc:
            metrics.log.warning("metrics: cannot read key usage: %s", type(exc).__name__)
            return []
        total = CounterMetricFamily(
            "midiscribe_key_audio_seconds", "seconds of audio transcribed per API key", labels=["key_id", "name"]
        )
        today = GaugeMetricFamily(
            "midiscribe_key_audio_seconds_today",
            "seconds of audio transcribed per API key today (UTC)",
            labels=["key_id", "name"],
        )
        for key_id, name, day_s, all_s, _ in rows:
            total.add_metric([key_id, name], all_s)
            today.add_metric([key_id, name], day_s)
        return [total, today]


def install(app: FastAPI) -> None:
    """Mount ``/metrics`` and count every request by method, route template and status."""
    state: AppState = app.state.midiscribe
    collector = metrics.StateCollector(lambda: tasks.counts_by_status(state.engine), state.dispatcher.queue_depths)
    app.state.metrics_registry = metrics.registry(collector, UsageCollector(state.engine))
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
