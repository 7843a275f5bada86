"""Handing tasks to workers. Embedded: nothing to do, the workers poll the database. Celery:
publish the task id to a queue chosen from the audio's duration.

The task row is written first, then published, then marked ``dispatched_at``. A publish that
never happened (the API died, the broker was down) or a message the broker lost is found by the
sweep that each API node runs: it re-publishes claimable tasks whose last publish is old (see
``tasks.redispatch_candidates``), guarded per task in the database so two nodes don't both send.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from sqlalchemy import Engine

from midiscribe.service.logs import task_context
from midiscribe.service.records import tasks
from midiscribe.service.settings import Settings

log = logging.getLogger("midiscribe.dispatch")


class Dispatcher(Protocol):
    publishes: bool

    def publish(self, task_id: str, audio_s: float | None) -> None: ...
    def queue_depths(self) -> dict[str, int] | None: ...
    def healthy(self) -> bool: ...
    def held_ids(self) -> set[str] | None: ...


class EmbeddedDispatcher:
    """The embedded workers claim queued rows themselves."""

    publishes = False

    def publish(self, task_id: str, audio_s: float | None) -> None:
        pass

    def queue_depths(self) -> dict[str, int] | None:
        return None

    def healthy(self) -> bool:
        return True

    def held_ids(self) -> set[str] | None:
        return None


class CeleryDispatcher:
    publishes = True

    def __init__(self, settings: Settings) -> None:
        from midiscribe.service.work.celery_app import make_app, queue_names

        self.settings = settings
        self.app = make_app(settings)
        self.queues = queue_names(settings)

    def publish(self, task_id: str, audio_s: float | None) -> None:
        queue = self.settings.queue_for(audio_s)
        from midiscribe.service.work.celery_app import TASK_NAME

        self.app.send_task(
            TASK_NAME,
            args=[task_id],
            queue=queue,
            routing_key=queue,
            # A backstop only: run_job ends a run at its own limit; this one ends a process stuck
            # where no heartbeat comes (its lease runs out and the sweep hands the task on).
            time_limit=self.settings.hard_time_limit_s(audio_s),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
        )

    def queue_depths(self) -> dict[str, int] | None:
        depths: dict[str, int] = {}
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            for name in self.queues:
                try:
                    with conn.channel() as channel:
                        depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
                except Exception:  # not declared yet: no worker has started on it
                    depths[name] = 0
        return depths

    def healthy(self) -> bool:
        try:
            with self.app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=3)
            return True
        except Exception as exc:
            log.warning("broker unreachable: %s", exc)
            return False

    def held_ids(self) -> set[str] | None:
        """The task ids whose message the broker holds (waiting in a queue, or delivered and not yet
        acknowledged), so the sweep re-publishes only what it lost (issue 12, defect 7). Redis only,
        up to ``HELD_SCAN_LIMIT`` messages; None where the broker cannot be read so (the sweep then
        falls back to its backoff)."""
        if not self.settings.broker_url.startswith(("redis", "rediss")):
            return None
        try:
            with self.app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=3)
                return _redis_held(conn.default_channel, self.queues)
        except Exception as exc:
            log.warning("sweep: cannot read the broker's messages (%s)", type(exc).__name__)
            return None


HELD_SCAN_LIMIT = 20_000


def _redis_held(channel: Any, queues: list[str]) -> set[str] | None:
    """kombu's Redis layout: a list per queue and priority step, and the ``unacked`` hash of
    ``[message, exchange, routing_key]``; a message's body is base64 JSON ``[[task_id], ...]``."""
    import base64
    import json

    client = channel.client
    keys = [channel._q_for_pri(queue, pri) for queue in queues for pri in channel.priority_steps]
    if sum(int(client.llen(key)) for key in keys) + int(client.hlen(channel.unacked_key)) > HELD_SCAN_LIMIT:
        return None
    raw = [m for key in keys for m in client.lrange(key, 0, -1)]
    for value in client.hvals(channel.unacked_key):
        message, _exchange, routing_key = json.loads(value)
        if routing_key in queues:
            raw.append(json.dumps(message))
    held: set[str] = set()
    for item in raw:
        try:
            message = json.loads(item)
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            held.add(str(args[0]))
        except Exception:  # not one of our messages
            continue
    return held


def build_dispatcher(settings: Settings) -> Dispatcher:
    return CeleryDispatcher(settings) if settings.distributed else EmbeddedDispatcher()


def submit(engine: Engine, dispatcher: Dispatcher, task_id: str, audio_s: float | None) -> None:
    """Publish a task the API just recorded; if that fails the sweep publishes it later."""
    if not dispatcher.publishes:
        return
    with task_context(task_id):
        try:
            dispatcher.publish(task_id, audio_s)
        except Exception as exc:
            log.warning("task %s: publish failed (%s); the sweep will retry", task_id, exc)
            return
        tasks.mark_dispatched(engine, task_id, None)


class Sweeper:
    """Re-publishes tasks whose message was never sent or was lost, or whose holder vanished."""

    def __init__(self, engine: Engine, dispatcher: Dispatcher, settings: Settings) -> None:
        self.engine, self.dispatcher, self.settings = engine, dispatcher, settings
        self._stop = threading.Event()

    def sweep_once(self) -> int:
        after_s = self.settings.redispatch_after_s
        sent = 0
        held = self.dispatcher.held_ids()
        missing = self._missing(held)
        for row in tasks.redispatch_candidates(self.engine, grace_s=min(5.0, after_s), after_s=after_s, lost=missing):
            marked = tasks.mark_dispatched(self.engine, row.id, row.dispatched_at)
            if marked is None:  # another API node re-published it
                continue
            with task_context(row.id):
                try:
                    self.dispatcher.publish(row.id, row.input_duration_s)
                except Exception as exc:
                    tasks.unmark_dispatched(self.engine, row.id, marked, row.dispatched_at)
                    log.warning("sweep: publish failed (%s)", exc)
                    break  # the broker is down: try again next round
                log.info("sweep: re-published (%s, publish %d)", row.status, row.dispatch_count + 1)
                sent += 1
        return sent

    def _missing(self, held: set[str] | None) -> set[str] | None:
        """Claimable tasks the broker held in neither this look nor the last (a message between a
        worker's pop and its claim is in neither for a moment); None: the broker cannot be read."""
        if held is None:
            self._absent = None
            return None
        absent = set(tasks.claimable_ids(self.engine)) - held
        previous, self._absent = self._absent, absent
        return absent & previous if previous is not None else set()

    _absent: set[str] | None = None

    def run_forever(self) -> None:
        while not self._stop.wait(self.settings.sweep_interval_s):
            try:
                self.sweep_once()
            except Exception:  # the database may be briefly unavailable
                log.exception("sweep error")

    def stop(self) -> None:
        self._stop.set()


class Background:
    """What an API node runs beside the HTTP server in the distributed mode: the webhook sender
    (several nodes' senders share the work through an optimistic claim per delivery) and the sweep."""

    def __init__(self, settings: Settings, engine: Engine, dispatcher: Dispatcher) -> None:
        from midiscribe.service.outside.webhooks import WebhookSender
        from midiscribe.service.wiring import fetch_policy

        self.sender = WebhookSender(engine, settings, fetch_policy(settings))
        self.sweeper = Sweeper(engine, dispatcher, settings)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        loops: list[tuple[Any, str]] = [(self.sender.run_forever, "webhooks"), (self.sweeper.run_forever, "sweep")]
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.sender.stop()
        self.sweeper.stop()
