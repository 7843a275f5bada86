"""Issue 12, defect 3: one slow webhook endpoint costs only itself.

A real sender (the one `midiscribe serve` runs) over a real SQLite database, posting to real HTTP
receivers on 127.0.0.1: ten endpoints that accept a request and never answer, and a healthy one.
The healthy receiver's webhooks must arrive no more than 1 s later than they do without the hung
endpoints, the hung endpoints' retries must keep their schedule, and one endpoint never gets more
than its per-endpoint share of the pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from midiscribe.service.outside.fetch import FetchPolicy
from midiscribe.service.outside.webhooks import WebhookSender, verify
from midiscribe.service.records import tasks
from midiscribe.service.records.db import init_db, make_engine, webhook_attempts, webhook_deliveries
from midiscribe.service.records.deliveries import IN_FLIGHT
from midiscribe.service.records.keys import create_key
from midiscribe.service.settings import Settings
from service_harness import Receiver, wait_until

TIMEOUT_S = 2.0
RETRY_S = 1.0


class HungEndpoint:
    """Reads each request and never answers (until the test ends); records when requests came."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                endpoint.arrivals.append(time.monotonic())
                endpoint.release.wait(60)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = make_engine(f"sqlite:///{tmp_path / 'hooks.db'}")
    init_db(e)
    yield e
    e.dispose()


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        webhook_timeout_s=TIMEOUT_S,
        webhook_schedule_s=[0, RETRY_S, RETRY_S],
        webhook_jitter=0,
        poll_interval_s=0.2,
        **extra,
    )


def _finished_task(engine: Engine, key_id: str, url: str) -> str:
    """A task finished now, with its webhook to ``url`` (as a worker finishes one)."""
    task_id = tasks.create_task(
        engine, key_id=key_id, request={}, input_kind="upload", input_ref="x", input_name="x.flac", webhook_url=url
    )
    payload = {"task_id": task_id, "success": True, "message": "Audio to Midi Completed"}
    assert tasks.finish(engine, task_id, None, values={"status": "completed", "progress": 100}, webhook=payload)
    return task_id


def _attempts(engine: Engine, task_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(webhook_attempts)
                .join(webhook_deliveries, webhook_deliveries.c.id == webhook_attempts.c.delivery_id)
                .where(webhook_deliveries.c.task_id == task_id)
                .order_by(webhook_attempts.c.attempt)
            ).all()
        )


@pytest.fixture
def sender(engine: Engine, tmp_path: Path) -> Iterator[WebhookSender]:
    s = WebhookSender(engine, _settings(tmp_path), FetchPolicy(allow_networks=("127.0.0.1/32",)))
    thread = threading.Thread(target=s.run_forever, daemon=True)
    thread.start()
    yield s
    s.stop()
    thread.join(5)


def _healthy_delays(engine: Engine, key_id: str, receiver: Receiver, n: int) -> list[float]:
    """Seconds from a task's finish to its webhook's arrival at the healthy receiver."""
    delays = []
    for _ in range(n):
        finished = time.time()
        task_id = _finished_task(engine, key_id, f"{receiver.url}/healthy")
        wait_until(lambda t=task_id: receiver.for_task(t), timeout=10, interval=0.01, what="healthy webhook")
        delays.append(receiver.for_task(task_id)[0].received_at - finished)
        time.sleep(0.1)
    return delays


def test_hung_endpoints_do_not_delay_a_healthy_receiver(engine: Engine, sender: WebhookSender) -> None:
    _, record = create_key(engine, "hooks")
    receiver = Receiver()
    hung = [HungEndpoint() for _ in range(10)]
    try:
        alone = _healthy_delays(engine, record.id, receiver, 5)
        hung_ids = [_finished_task(engine, record.id, h.url) for h in hung]
        wait_until(lambda: all(h.arrivals for h in hung), timeout=5, interval=0.02, what="hung endpoints reached")
        assert sender.in_flight() >= 10
        with_hung = _healthy_delays(engine, record.id, receiver, 5)
        print(
            f"\nhealthy receiver, webhook delay: alone max {max(alone):.3f} s, "
            f"with 10 hung endpoints max {max(with_hung):.3f} s (mean {sum(with_hung) / 5:.3f} s)"
        )
        assert max(with_hung) < max(alone) + 1.0, (alone, with_hung)
        assert all(verify(record.webhook_secret, d.headers, d.body) for d in receiver.deliveries)

        # While the hung attempts are out, the task status already shows them (recorded first).
        first = _attempts(engine, hung_ids[0])
        assert [(a.attempt, a.error) for a in first] == [(1, IN_FLIGHT)]

        # Their retries keep the schedule: each second attempt starts RETRY_S after the first ends.
        wait_until(lambda: all(len(h.arrivals) >= 2 for h in hung), timeout=10, interval=0.05, what="retries")
        gaps = [h.arrivals[1] - h.arrivals[0] for h in hung]
        print(f"hung endpoints: first to second attempt {min(gaps):.2f}-{max(gaps):.2f} s (timeout + retry 3.0 s)")
        assert all(TIMEOUT_S + RETRY_S - 0.2 < g < TIMEOUT_S + RETRY_S + 1.0 for g in gaps), gaps
        attempts = _attempts(engine, hung_ids[0])
        assert attempts[0].error == f"no answer within {TIMEOUT_S:g} s" and attempts[0].duration_ms >= 1900
    finally:
        for h in hung:
            h.close()
        receiver.close()


def test_one_endpoint_gets_only_its_share(engine: Engine, tmp_path: Path) -> None:
    settings = _settings(tmp_path, webhook_concurrency=4, webhook_concurrency_per_endpoint=2)
    sender = WebhookSender(engine, settings, FetchPolicy(allow_networks=("127.0.0.1/32",)))
    _, record = create_key(engine, "share")
    hung, receiver = HungEndpoint(), Receiver()
    thread = threading.Thread(target=sender.run_forever, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            _finished_task(engine, record.id, hung.url)
        wait_until(lambda: len(hung.arrivals) >= 2, timeout=5, interval=0.02, what="hung endpoint reached")
        time.sleep(0.5)
        assert len(hung.arrivals) == 2 and sender.in_flight() == 2  # the other 3 wait for its slots
        healthy = [_finished_task(engine, record.id, f"{receiver.url}/ok") for _ in range(3)]
        wait_until(lambda: all(receiver.for_task(t) for t in healthy), timeout=2, interval=0.02, what="healthy")
        wait_until(lambda: len(hung.arrivals) >= 4, timeout=TIMEOUT_S + 2, interval=0.05, what="next two")
    finally:
        sender.stop()
        thread.join(5)
        hung.close()
        receiver.close()
