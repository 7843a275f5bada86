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

    def publish(self, task_id: str, audio_s: float | None, model: str = "general") -> None: ...
    def queue_depths(self) -> dict[str, int] | None: ...
    def healthy(self) -> bool: ...


class EmbeddedDispatcher:
    """The embedded workers claim queued rows themselves."""

    publishes = False

    def publish(self, task_id: str, audio_s: float | None, model: str = "general") -> None:
        pass

    def queue_depths(self) -> dict[str, int] | None:
        return None

    def healthy(self) -> bool:
        return True


class CeleryDispatcher:
    publishes = True

    def __init__(self, settings: Settings) -> None:
        from midiscribe.service.work.celery_app import make_app, queue_names

        self.settings = settings
        self.app = make_app(settings)
        self.queues = queue_names(settings)

    def publish(self, task_id: str, audio_s: float | None, model: str = "general") -> None:
        queue = self.settings.queue_for(audio_s, model)
        from midiscribe.service.work.celery_app import TASK_NAME

        self.app.send_task(
            TASK_NAME,
            args=[task_id],
            queue=queue,
            routing_key=queue,
            # A backstop only: run_job ends a run at its own limit; this one ends a process stuck
            # where no heartbeat comes (its lease runs out and the sweep hands the task on).
            time_limit=self.settings.hard_time_limit_s(audio_s, model),
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


def build_dispatcher(settings: Settings) -> Dispatcher:
    return CeleryDispatcher(settings) if settings.distributed else EmbeddedDispatcher()


def submit(engine: Engine, dispatcher: Dispatcher, task_id: str, audio_s: float | None, model: str = "general") -> None:
    """Publish a task the API just recorded; if that fails the sweep publishes it later."""
    if not dispatcher.publishes:
        return
    with task_context(task_id):
        try:
            dispatcher.publish(task_id, audio_s, model)
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
        for row in tasks.redispatch_candidates(self.engine, grace_s=min(5.0, after_s), after_s=after_s):
            marked = tasks.mark_dispatched(self.engine, row.id, row.dispatched_at)
            if marked is None:  # another API node re-published it
                continue
            with task_context(row.id):
                try:
                    self.dispatcher.publish(row.id, row.input_duration_s, (row.request or {}).get("model", "general"))
                except Exception as exc:
                    tasks.unmark_dispatched(self.engine, row.id, marked, row.dispatched_at)
                    log.warning("sweep: publish failed (%s)", exc)
                    break  # the broker is down: try again next round
                log.info("sweep: re-published (%s, publish %d)", row.status, row.dispatch_count + 1)
                sent += 1
        return sent

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
