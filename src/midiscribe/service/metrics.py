"""Prometheus metrics: HTTP requests, task runs and their duration, audio seconds processed, and
tasks by state and queue depth read from the database and broker at scrape time.

Worker processes are separate from the process that serves ``/metrics`` (embedded workers are
spawned by ``serve``; Celery forks its pool), so the commands turn on prometheus_client's
multiprocess mode (``cli.distributed.share_metrics``) before any metric exists: every process writes
its samples to files in one directory and a scrape adds them up.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("midiscribe.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TASK_BUCKETS_S = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
STATES = ("queued", "processing", "completed", "failed", "cancelled")


def _multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


_LOCAL = CollectorRegistry()


class _Metrics:
    def __init__(self) -> None:
        registry = None if _multiprocess() else _LOCAL  # multiprocess samples are read from files
        self.requests = Counter(
            "midiscribe_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )
        self.request_s = Histogram(
            "midiscribe_http_request_duration_seconds", "time to answer HTTP requests", ["route"], registry=registry
        )
        self.task_runs = Counter(
            "midiscribe_task_runs",
            "runs of tasks by outcome (completed, failed, lost, released)",
            ["outcome"],
            registry=registry,
        )
        self.task_s = Histogram(
            "midiscribe_task_duration_seconds",
            "wall time of one run of a task",
            ["outcome"],
            buckets=TASK_BUCKETS_S,
            registry=registry,
        )
        self.audio_s = Counter("midiscribe_audio_processed_seconds", "seconds of audio transcribed", registry=registry)


@functools.cache
def get() -> _Metrics:
    """This process's metrics, created on first use."""
    return _Metrics()


def observe_task(outcome: str, seconds: float, audio_s: float | None) -> None:
    m = get()
    m.task_runs.labels(outcome).inc()
    m.task_s.labels(outcome).observe(seconds)
    if audio_s:
        m.audio_s.inc(audio_s)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    m = get()
    m.requests.labels(method, route, str(status)).inc()
    m.request_s.labels(route).observe(seconds)


class _Local:
    def collect(self) -> Iterable[Metric]:
        return _LOCAL.collect()


class StateCollector:
    """Tasks by state (database) and queue depth (broker; the queued count when embedded), read at
    each scrape. Cluster-wide numbers: every API node reports the same."""

    def __init__(self, counts: Callable[[], dict[str, int]], depths: Callable[[], dict[str, int] | None]) -> None:
        self.counts, self.depths = counts, depths

    def collect(self) -> Iterable[Metric]:
        try:
            counts = self.counts()
        except Exception as exc:
            log.warning("metrics: cannot count tasks: %s", exc)
            return []
        tasks = GaugeMetricFamily("midiscribe_tasks", "tasks by state", labels=["state"])
        for state in STATES:
            tasks.add_metric([state], counts.get(state, 0))
        depth = GaugeMetricFamily("midiscribe_queue_depth", "messages waiting in each queue", labels=["queue"])
        try:
            depths = self.depths()
        except Exception as exc:
            log.warning("metrics: cannot read queue depths: %s", exc)
            depths = {}
        for queue, n in (depths if depths is not None else {"embedded": counts.get("queued", 0)}).items():
            depth.add_metric([queue], n)
        return [tasks, depth]


def registry(*extra: Any) -> CollectorRegistry:
    """A registry for one exposition: this process's (or all processes') samples plus ``extra``."""
    reg = CollectorRegistry(auto_describe=False)
    if _multiprocess():
        MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
    else:
        get()
        reg.register(_Local())
    for collector in extra:
        reg.register(collector)
    return reg


def serve(host: str, port: int) -> None:
    """Expose this node's metrics (all its processes) on ``http://host:port/metrics``."""
    start_http_server(port, addr=host, registry=registry())
    log.info("metrics on http://%s:%d/metrics", host, port)
