"""A worker node's watchdog: a thread in the Celery main process that writes the node's heartbeat
(``records/workers.py``) every ``WORKER_HEARTBEAT_S`` and restarts a node that has gone deaf.

Deaf (issue 12, defect 1), for ``WORKER_DEAF_AFTER_S`` with the broker reachable: the node's queues
hold messages and it has a free slot, yet it receives nothing (a listening worker with a free slot
is blocked in BRPOP, or its AMQP consumer is live, and takes a waiting message at once); or its
channel asks for no message while the node holds none (below), even when no work waits. The cause found and mended
is in ``celery_app._mend_redis_ack``; this catches the ones not found. The node then stops (warm:
running tasks finish; their late acks may fail, their records decide) and exits with
:data:`EXIT_DEAF`, which ``midiscribe worker`` answers by starting it again; under systemd or
Kubernetes (``--no-supervise``) any exit restarts it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import datetime
from typing import Any

from midiscribe.service.records import workers
from midiscribe.service.records.db import utcnow
from midiscribe.service.settings import Settings

log = logging.getLogger("midiscribe.watchdog")

EXIT_DEAF = 75  # EX_TEMPFAIL: start me again
_HARD_EXIT_AFTER_S = 60.0  # a warm stop that does not end by then is cut short


class Watchdog:
    def __init__(self, settings: Settings, engine: Any, name: str, queues: list[str]) -> None:
        self.settings, self.engine, self.name, self.queues = settings, engine, name, queues
        self.started_at = utcnow()
        self.consumed_at: datetime | None = None
        self._received = time.monotonic()
        self._waiting_since: float | None = None  # work waiting and a slot free, since
        self._stuck_since: float | None = None  # the channel asks for nothing while the node holds nothing, since
        self.deaf = False
        self._consumer: Any = None
        self._stop = threading.Event()
        self._db_failing = False

    # --- Celery signals (main process) ---

    def on_ready(self, sender: Any = None, **_: Any) -> None:
        self._consumer = sender
        threading.Thread(target=self._run, name="watchdog", daemon=True).start()

    def on_received(self, **_: Any) -> None:
        self._received = time.monotonic()
        self.consumed_at = utcnow()

    def on_shutdown(self, **_: Any) -> None:
        self._stop.set()
        self._beat("deaf" if self.deaf else "stopped")

    # --- the loop ---

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # the watchdog never takes the worker down by accident
                log.exception("watchdog check failed")
            self._stop.wait(self.settings.worker_heartbeat_s)

    def check(self) -> str:
        """One look: the node's state now (and, if deaf, the stop begins)."""
        depth = self._depth()
        busy, slots = self._slots()
        now = time.monotonic()
        stuck = self._channel_stuck()
        self._stuck_since = (self._stuck_since or now) if stuck else None
        if depth is None:
            state, self._waiting_since = "broker_down", None
        else:
            waiting = depth > 0 and busy < slots
            self._waiting_since = (self._waiting_since or now) if waiting else None
            silent_s = now - max(self._waiting_since, self._received) if self._waiting_since is not None else 0.0
            stuck_s = now - self._stuck_since if self._stuck_since is not None else 0.0
            deaf = max(silent_s, stuck_s) >= self.settings.worker_deaf_after_s
            state = "deaf" if deaf else "listening"
        self._beat(state, busy, slots)
        if state == "deaf" and not self.deaf:
            self._restart(depth or 0, busy, slots)
        return state

    def _channel_stuck(self) -> bool:
        """Redis and SQS (kombu's virtual channels): the channel counts a message as delivered and
        unacknowledged, so it asks for no more, while the node holds no task at all — the signature
        of the ack lost on a dead link. Seen even when no work waits (other nodes drain the queues)."""
        from celery.worker import state as worker_state

        channel = getattr(getattr(self._consumer, "task_consumer", None), "channel", None)
        can_consume = getattr(getattr(channel, "qos", None), "can_consume", None)
        if can_consume is None:
            return False
        return not can_consume() and not worker_state.reserved_requests and not worker_state.active_requests

    def _slots(self) -> tuple[int, int]:
        from celery.worker import state as worker_state

        pool = getattr(self._consumer, "pool", None)
        slots = int(getattr(pool, "num_processes", 0) or 1)
        return len(worker_state.active_requests), slots

    def _depth(self) -> int | None:
        """Messages waiting in this node's queues, on a connection of its own; None: broker unreachable."""
        app = getattr(self._consumer, "app", None)
        if app is None:
            return None
        try:
            total = 0
            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=3)
                for name in self.queues:
                    try:
                        with conn.channel() as channel:
                            total += int(channel.queue_declare(queue=name, passive=True).message_count)
                    except conn.connection_errors:
                        raise
                    except Exception:  # an empty Redis list does not exist: no message
                        continue
            return total
        except Exception:
            return None

    def _beat(self, state: str, busy: int = 0, slots: int = 1) -> None:
        b = workers.Beat(self.name, ",".join(self.queues), slots, busy, state, self.started_at, self.consumed_at)
        try:
            workers.beat(self.engine, b)
            if self._db_failing:
                log.info("heartbeat recorded again")
            self._db_failing = False
        except Exception as exc:
            if not self._db_failing:
                log.warning("cannot record the heartbeat (%s); the worker goes on", type(exc).__name__)
            self._db_failing = True

    def _restart(self, depth: int, busy: int, slots: int) -> None:
        self.deaf = True
        log.error(
            "deaf: %d message(s) waiting, %d of %d slot(s) free, nothing received for %.0f s; restarting",
            depth,
            slots - busy,
            slots,
            time.monotonic() - self._received,
        )
        os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown

        def cut_short() -> None:
            time.sleep(_HARD_EXIT_AFTER_S)
            log.error("the warm stop took over %.0f s; exiting now", _HARD_EXIT_AFTER_S)
            os._exit(EXIT_DEAF)

        threading.Thread(target=cut_short, daemon=True).start()


_current: list[Watchdog] = []


def current() -> Watchdog | None:
    """This process's watchdog, if one was installed."""
    return _current[-1] if _current else None


def install(settings: Settings, engine: Any, name: str, queues: list[str]) -> Watchdog:
    """Start a watchdog for this worker node when Celery's consumer is ready."""
    from celery.signals import task_received, worker_ready, worker_shutting_down

    dog = Watchdog(settings, engine, name, queues)
    _current.append(dog)
    worker_ready.connect(dog.on_ready, weak=False)
    task_received.connect(dog.on_received, weak=False)
    worker_shutting_down.connect(dog.on_shutdown, weak=False)
    return dog
