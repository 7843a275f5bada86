"""The embedded worker pool: N processes that claim tasks from the database and run them,
and a supervisor that restarts any that die. Used when no broker is configured."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from typing import Any

from midiscribe.core.model import default_threads
from midiscribe.service.logs import configure as configure_logging
from midiscribe.service.outside.webhooks import WebhookSender
from midiscribe.service.records import tasks
from midiscribe.service.settings import Settings
from midiscribe.service.wiring import build_engine, build_store, fetch_policy
from midiscribe.service.work.jobs import JobContext
from midiscribe.service.work.runner import run_observed

log = logging.getLogger("midiscribe.workers")


def worker_main(overrides: dict[str, Any], index: int, threads: int) -> None:
    """Entry point of one worker process (spawned: nothing inherited but the environment)."""
    settings = Settings(**overrides)
    configure_logging(f"worker-{index}", settings.log_format)
    engine = build_engine(settings, create=False)
    ctx = JobContext(
        settings=settings,
        engine=engine,
        store=build_store(settings),
        owner=f"{socket.gethostname()}:{os.getpid()}",
        policy=fetch_policy(settings),
        threads=threads,
    )
    signal.signal(signal.SIGTERM, lambda *_: ctx.stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    log.info("worker %s ready (%d threads)", ctx.owner, threads)
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent, ctx.stop), daemon=True).start()
    while not ctx.stop.is_set():
        try:
            task_id = tasks.next_claimable(engine)
            if task_id is None:
                ctx.stop.wait(settings.poll_interval_s)
                continue
            run_observed(ctx, task_id)
        except Exception:  # a database hiccup must not kill the worker
            log.exception("worker loop error")
            ctx.stop.wait(1.0)
    log.info("worker %s stopped", ctx.owner)


def _watch_parent(parent: int, stop: threading.Event) -> None:
    """Stop (handing a running task back) if the supervisor died without telling us."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("supervisor %d is gone; stopping", parent)
            stop.set()


class Supervisor:
    """Starts the worker processes and the webhook sender; restarts workers that die."""

    def __init__(self, settings: Settings, overrides: dict[str, Any]) -> None:
        self.settings, self.overrides = settings, overrides
        self.count = settings.workers
        self.threads = max(1, default_threads() // max(1, self.count))
        self._ctx = mp.get_context("spawn")
        self.processes: list[Any] = []
        self._stopping = threading.Event()
        self._sender = WebhookSender(build_engine(settings, create=False), settings, fetch_policy(settings))
        self._threads: list[threading.Thread] = []

    def _spawn(self, index: int) -> Any:
        proc = self._ctx.Process(
            target=worker_main,
            args=(self.overrides, index, self.threads),
            name=f"midiscribe-worker-{index}",
            daemon=False,
        )
        proc.start()
        return proc

    def start(self) -> None:
        self.processes = [self._spawn(i) for i in range(self.count)]
        for target, name in ((self._monitor, "supervisor"), (self._sender.run_forever, "webhooks")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _monitor(self) -> None:
        while not self._stopping.wait(1.0):
            for i, proc in enumerate(self.processes):
                if not proc.is_alive() and not self._stopping.is_set():
                    log.warning("worker %d (pid %s) died with exit code %s; restarting", i, proc.pid, proc.exitcode)
                    self.processes[i] = self._spawn(i)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.is_alive()]

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask workers to stop (a running task goes back to the queue), then make sure they did."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._sender.stop()
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self.processes:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker pid %s did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.join(5)
