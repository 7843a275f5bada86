"""Issue 11's fault tests with a worker: kill -9 of the server with tasks running, a webhook
receiver down then up, cancelling a running task; and what finished tasks carry: usage per key,
sonify_format, retention (files deleted after RESULT_TTL_DAYS, links answer 410)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import av
import httpx
import pytest

from audiogen import encode, melody
from service_harness import Receiver, Service, free_port, wait_until

API = "/api/public/v1/audio_to_midi"
TASKS = "/api/public/v1/tasks"
TTL_DAYS = 15 / 86400  # 15 s: the last test waits for the first tasks to expire


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("task-faults-media")
    encode(root / "short.flac", melody([(0.1, 0.4, 60), (0.6, 0.3, 64)], 1.0, sr=22_050), sr=22_050, kind="flac")
    events = [(0.2 + 0.5 * i, 0.4, 55 + (i % 12)) for i in range(60)]
    encode(root / "long.flac", melody(events, 30.0, sr=22_050), sr=22_050, kind="flac")
    return {name: (root / f"{name}.flac").read_bytes() for name in ("short", "long")}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = Service(
        tmp_path_factory.mktemp("task-faults"),
        env={"MIDISCRIBE_RESULT_TTL_DAYS": str(TTL_DAYS), "MIDISCRIBE_RETENTION_INTERVAL_S": "1"},
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def key(svc: Service) -> str:
    return svc.create_key("task-faults")[0]


def submit(svc: Service, key: str, data: bytes, **fields: str) -> str:
    r = httpx.post(
        svc.url + API, headers={"Authorization": key}, files={"audio_file": ("a.flac", data)}, data=fields, timeout=30
    )
    assert r.status_code == 200, r.text
    task_id: str = r.json()["task_id"]
    return task_id


def status(svc: Service, key: str, task_id: str) -> dict[str, Any]:
    r = httpx.get(f"{svc.url}{TASKS}/{task_id}", headers={"Authorization": key}, timeout=30)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def finished(svc: Service, key: str, task_id: str, timeout: float = 120) -> dict[str, Any]:
    done: dict[str, Any] = wait_until(
        lambda: (t := status(svc, key, task_id))["status"] in ("completed", "failed", "cancelled") and t,
        timeout=timeout,
        interval=0.2,
        what=f"task {task_id}",
    )
    return done


def test_sonify_format_and_usage(svc: Service, key: str, audio: dict[str, bytes]) -> None:
    task_id = submit(svc, key, audio["short"], sonify_format="flac", save_note_events="false")
    task = finished(svc, key, task_id)
    assert task["status"] == "completed", task
    link = task["result"]["sonify_file_path"]
    assert ".flac?" in link and task["expires_at"]
    path = svc.data_dir / "objects" / "results" / f"{task_id}.flac"
    with av.open(str(path)) as container:
        assert container.format.name == "flac" and container.duration / 1e6 > 0.5
    listing = svc.cli("keys", "list")
    row = next(line for line in listing.splitlines() if line.endswith("task-faults"))
    assert float(row.split()[5]) >= 0.9, listing  # today s: the 1 s upload
    metrics = httpx.get(svc.url + "/metrics").text
    assert "midiscribe_key_audio_seconds_total{" in metrics


def test_kill_9_with_tasks_running_then_restart(
    svc: Service, key: str, audio: dict[str, bytes], receiver: Receiver
) -> None:
    ids = [submit(svc, key, audio["short"], webhook_url=f"{receiver.url}/kill") for _ in range(2)]
    ids.append(submit(svc, key, audio["long"], webhook_url=f"{receiver.url}/kill"))
    wait_until(lambda: any(status(svc, key, i)["status"] == "processing" for i in ids), what="a task running")
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait(10)
    svc.start()  # same port and data: workers of the killed server stop on their own and hand tasks back
    for task_id in ids:
        assert finished(svc, key, task_id, timeout=180)["status"] == "completed"
    for task_id in ids:
        wait_until(lambda t=task_id: receiver.for_task(t), what="webhook")  # type: ignore[misc]
    wait_until(lambda: all(status(svc, key, i)["webhook"]["state"] == "delivered" for i in ids), what="delivered")
    assert [len(receiver.for_task(i)) for i in ids] == [1, 1, 1]


class _Hook(BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_receiver_down_then_up(svc: Service, key: str, audio: dict[str, bytes]) -> None:
    port = free_port()  # nothing listens there yet: deliveries are refused
    task_id = submit(svc, key, audio["short"], webhook_url=f"http://127.0.0.1:{port}/hook")
    wait_until(
        lambda: (w := status(svc, key, task_id).get("webhook")) and w["attempts"], timeout=120, what="a failed attempt"
    )
    seen: list[dict[str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", port), type("H", (_Hook,), {"seen": seen}))
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        task = wait_until(
            lambda: (t := status(svc, key, task_id))["webhook"]["state"] == "delivered" and t,
            timeout=30,
            what="delivery",
        )
    finally:
        server.shutdown()
    attempts = task["webhook"]["attempts"]
    assert attempts[0]["status_code"] is None and attempts[-1]["status_code"] == 200
    assert [h["webhook-id"] for h in seen] == [task["webhook"]["webhook_id"]]


def test_cancel_a_running_task(svc: Service, key: str, audio: dict[str, bytes], receiver: Receiver) -> None:
    task_id = submit(svc, key, audio["long"], webhook_url=f"{receiver.url}/cancel")
    wait_until(lambda: status(svc, key, task_id)["progress"] >= 10, timeout=120, interval=0.05, what="under way")
    r = httpx.delete(f"{svc.url}{TASKS}/{task_id}", headers={"Authorization": key})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    (hook,) = wait_until(lambda: receiver.for_task(task_id), what="cancelled webhook")
    payload = hook.json()
    assert payload["success"] is False and payload["message"] == "Audio to Midi Cancelled"
    assert payload["error"]["code"] == "task_cancelled"
    wait_until(lambda: "cancelled by its owner; stopped" in svc.log(), timeout=60, what="the worker stopping")
    results = svc.data_dir / "objects" / "results"
    assert not list(results.glob(f"{task_id}.*"))
    assert status(svc, key, task_id)["status"] == "cancelled"


def test_retention_deletes_expired_files(svc: Service, key: str, tmp_path: Path) -> None:
    listed = httpx.get(f"{svc.url}{TASKS}?limit=100", headers={"Authorization": key}).json()["tasks"]
    oldest = next(t for t in reversed(listed) if t["status"] == "completed")
    before = status(svc, key, oldest["task_id"])
    link = before["result"]["midi_file_path"] if before["result"] else None
    task = wait_until(
        lambda: (t := status(svc, key, oldest["task_id"]))["files_deleted_at"] and t, timeout=60, what="expiry"
    )
    assert task["result"] is None and task["expires_at"] is None
    assert not list((svc.data_dir / "objects" / "results").glob(f"{oldest['task_id']}.*"))
    if link:
        r = httpx.get(link)
        assert r.status_code == 410 and r.json()["error"]["code"] == "file_expired"


class _Empty(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def test_failed_task_messages_carry_no_server_paths(svc: Service, key: str) -> None:
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Empty)
    Thread(target=origin.serve_forever, daemon=True).start()
    try:
        r = httpx.post(
            svc.url + API,
            headers={"Authorization": key},
            json={"audio_path": f"http://127.0.0.1:{origin.server_address[1]}/song.wav"},
        )
        assert r.status_code == 200, r.text
        task = finished(svc, key, r.json()["task_id"])
    finally:
        origin.shutdown()
    assert task["status"] == "failed" and task["error"]["code"] == "unsupported_audio"
    message = task["error"]["message"]
    assert "/" not in message and str(svc.data_dir) not in message and "empty" in message, message
