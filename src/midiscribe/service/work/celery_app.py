"""Celery as the task delivery of the distributed mode. Messages carry only a task id: the task
record stays the single truth of who runs what (its lease), and ``run_job`` does the work, as
the embedded workers do.

At-least-once: a message is acknowledged after the run (``task_acks_late``), given back if the
worker process dies (``task_reject_on_worker_lost``), and redelivered by Redis or SQS after the
visibility timeout, which is longer than the longest task. Each worker process takes one message
at a time (prefetch 1). A duplicate finds the task claimed or finished and does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown
from kombu.entity import Queue

from midiscribe.service.settings import Settings

log = logging.getLogger("midiscribe.celery")

TASK_NAME = "midiscribe.run_job"
QUEUE_KINDS = ("default", "long")


def queue_names(settings: Settings) -> list[str]:
    return [f"{settings.queue_prefix}.{kind}" for kind in QUEUE_KINDS]


def make_app(settings: Settings) -> Celery:
    """The Celery app, the same for publishers (API nodes) and workers."""
    app = Celery("midiscribe", broker=settings.broker_url, set_as_current=False)
    transport: dict[str, Any] = {"visibility_timeout": settings.effective_visibility_timeout_s}
    if settings.broker_url.startswith(("redis", "rediss")):
        transport |= {"socket_connect_timeout": 5, "socket_keepalive": True, "health_check_interval": 10}
    app.conf.update(
        task_queues=[Queue(name, routing_key=name) for name in queue_names(settings)],  # type: ignore[no-untyped-call]
        task_default_queue=settings.queue_for(None),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for the broker to come back
        broker_connection_timeout=5,
        broker_heartbeat=30,
        worker_cancel_long_running_tasks_on_connection_loss=False,  # the record decides, not the link
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_proc_alive_timeout=120,  # a new process loads the model before it takes work
        worker_enable_remote_control=False,
        worker_send_task_events=False,
    )
    return app


_process: dict[str, Any] = {}  # this worker process's JobContext, built once after the fork


def worker_app(settings: Settings, threads: int, *, name: str = "", queues: list[str] | None = None) -> Celery:
    """The app a worker runs: the task, per process a JobContext and the model, built once, and in
    the main process the watchdog that writes the node's heartbeat (``name``, on ``queues``)."""
    from midiscribe.service.logs import task_context
    from midiscribe.service.wiring import build_engine
    from midiscribe.service.work import watchdog
    from midiscribe.service.work.runner import run_observed

    if not os.environ.get("MIDISCRIBE_TEST_UNMENDED_ACK"):  # tests only: a worker that goes deaf (watchdog)
        _mend_redis_ack()
    app = make_app(settings)
    beats = build_engine(settings, create=False, busy_timeout_s=5.0)
    watchdog.install(settings, beats, name or f"midiscribe-{os.getpid()}@{socket.gethostname()}", queues or [])

    def run(task: Task, task_id: str) -> str:
        delivery = task.request.delivery_info or {}
        with task_context(task_id):
            log.info(
                "task %s: delivered from %s%s",
                task_id,
                delivery.get("routing_key"),
                " (redelivered)" if delivery.get("redelivered") else "",
            )
        return run_observed(_process["ctx"], task_id)

    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(run)

    def init(**_: Any) -> None:
        beats.dispose(close=False)  # the main process's connections are not this process's to use or close
        _process["ctx"] = _context(settings, threads)

    def shutdown(**_: Any) -> None:
        if "ctx" in _process:
            _process["ctx"].stop.set()

    worker_process_init.connect(init, weak=False)
    worker_process_shutdown.connect(shutdown, weak=False)
    return app


def _mend_redis_ack() -> None:
    """Issue 12, defect 1: a worker went deaf after Redis died while it ran a task. The task ends,
    its late ack meets the dead connection (``Couldn't ack ... ConnectionError``), and kombu's Redis
    QoS raises before it forgets the message, so the channel counts it as delivered forever; with
    prefetch 1 it never asks for another message (no BRPOP), never touches the dead socket, and
    never learns that it should reconnect. The message stays in Redis's unacked set either way (and
    comes back after the visibility timeout, to find its task finished), so the local count is
    dropped whatever Redis answered; the next BRPOP then meets the dead connection and Celery
    reconnects as it does for an idle worker. Celery reports of this family: #9054, #10205, #10302.
    """
    from kombu.transport import redis as kombu_redis
    from kombu.transport.virtual.base import QoS as VirtualQoS

    qos: Any = kombu_redis.QoS
    if getattr(qos, "_midiscribe_mended", False):
        return

    def ack(self: Any, delivery_tag: Any) -> None:
        try:
            self._remove_from_indices(delivery_tag).execute()
        finally:
            VirtualQoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]

    qos.ack = ack
    qos._midiscribe_mended = True


def _context(settings: Settings, threads: int) -> Any:
    from midiscribe.core.model import load_model
    from midiscribe.service.wiring import build_engine, build_store, fetch_policy
    from midiscribe.service.work.jobs import JobContext

    ctx = JobContext(
        settings=settings,
        engine=build_engine(settings, create=False),
        store=build_store(settings),
        owner=f"{socket.gethostname()}:{os.getpid()}",
        policy=fetch_policy(settings),
        threads=threads,
    )
    load_model(threads=threads, backend=settings.backend, precision=settings.precision)
    log.info("worker process %s ready (%d threads)", ctx.owner, threads)
    return ctx
