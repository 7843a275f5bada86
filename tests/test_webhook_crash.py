"""Issue 12, defect 6: a webhook interrupted by a crash of the node sending it.

A real `midiscribe serve` posts a task's webhook to a receiver that holds the request without
answering; the node is killed with SIGKILL mid-send and started again. The attempt was recorded
before it went out, so the status shows it (as interrupted); the re-send carries the same
``webhook-id`` and comes within the delivery lease, not minutes later.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from audiogen import encode, melody
from midiscribe.service.outside.webhooks import verify
from midiscribe.service.records.deliveries import IN_FLIGHT, INTERRUPTED
from service_harness import Service, wait_until

API = "/api/public/v1/audio_to_midi"
LEASE_S = 10.0  # the default webhook_lease_s: what a deployment gets


class HoldingReceiver:
    """Holds the first request open without answering; answers the ones after it with 200."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, str], bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.arrivals.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
                if len(receiver.arrivals) == 1:
                    receiver.release.wait(120)
                    return
                self.send_response(200)
                self.end_headers()

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
def receiver() -> Iterator[HoldingReceiver]:
    r = HoldingReceiver()
    yield r
    r.close()


def _attempts(data_dir: Path) -> list[tuple[int, int | None, str | None]]:
    db = sqlite3.connect(data_dir / "midiscribe.db", timeout=10)
    try:
        rows = db.execute("SELECT attempt, status_code, error FROM webhook_attempts ORDER BY attempt").fetchall()
    finally:
        db.close()
    return [(int(a), s, e) for a, s, e in rows]


def test_webhook_resent_soon_after_the_sender_is_killed(tmp_path: Path, receiver: HoldingReceiver) -> None:
    audio = encode(tmp_path / "t.flac", melody([(0.1, 0.4, 60)], 1.0, sr=22_050), sr=22_050, kind="flac")
    env = {"MIDISCRIBE_WEBHOOK_TIMEOUT_S": "60", "MIDISCRIBE_WEBHOOK_SCHEDULE_S": "0,1,1"}
    svc = Service(tmp_path / "node", workers=1, env=env)
    key, secret = svc.create_key("crash")
    svc.start()
    try:
        r = httpx.post(
            svc.url + API,
            headers={"Authorization": key},
            files={"audio_file": ("t.flac", audio.read_bytes())},
            data={"webhook_url": receiver.url},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        task_id = r.json()["task_id"]
        wait_until(lambda: receiver.arrivals, timeout=60, interval=0.02, what="the webhook in flight")
        assert _attempts(svc.data_dir) == [(1, None, IN_FLIGHT)]  # recorded before it went out
        assert svc.proc is not None
        for pid in [*svc.worker_pids(), svc.proc.pid]:  # the whole node, no goodbye
            os.kill(pid, signal.SIGKILL)
        svc.proc.wait(10)
        crashed = time.monotonic()

        svc.start()
        restarted = time.monotonic() - crashed
        status = httpx.get(f"{svc.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": key}).json()
        assert status["status"] == "completed"
        if len(receiver.arrivals) == 1:  # not re-sent yet: the status shows the attempt that is out
            assert [a["error"] for a in status["webhook"]["attempts"]] == [IN_FLIGHT]

        wait_until(lambda: len(receiver.arrivals) >= 2, timeout=LEASE_S + 20, interval=0.05, what="the re-send")
        resend_s = receiver.arrivals[1][0] - receiver.arrivals[0][0]
        print(f"\nre-send after the crash: {resend_s:.2f} s after the first send (node restart took {restarted:.2f} s)")
        assert resend_s < LEASE_S + restarted + 3
        (_, first, body1), (_, second, body2) = receiver.arrivals[:2]
        assert first["webhook-id"] == second["webhook-id"] and body1 == body2
        assert verify(secret, second, body2)

        def delivered() -> dict[str, Any] | None:
            view = httpx.get(f"{svc.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": key}).json()
            return view["webhook"] if view["webhook"]["state"] == "delivered" else None

        webhook = wait_until(delivered, timeout=10, what="delivered")
        assert webhook["webhook_id"] == first["webhook-id"]
        assert [(a["attempt"], a["status_code"], a["error"]) for a in webhook["attempts"]] == [
            (1, None, INTERRUPTED),
            (2, 200, None),
        ]
        assert len(receiver.arrivals) == 2
    finally:
        svc.stop()
