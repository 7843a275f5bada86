"""Real processes for service tests: `midiscribe serve`, a webhook receiver, an audio file server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

EXE = Path(sys.executable).with_name("midiscribe")
MOTO = Path(sys.executable).with_name("moto_server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Service:
    """`midiscribe serve` in a subprocess on 127.0.0.1 with its own data dir."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "MIDISCRIBE_DATA_DIR": str(self.data_dir),
                "MIDISCRIBE_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
                "MIDISCRIBE_WEBHOOK_SCHEDULE_S": "0,0.3,0.6,1.0,2.0",
                "MIDISCRIBE_WEBHOOK_TIMEOUT_S": "3",
                "MIDISCRIBE_LEASE_S": "4",
                "MIDISCRIBE_POLL_INTERVAL_S": "0.2",
            }
        )
        env.update(self.env)
        return env

    def cli(self, *args: str) -> str:
        out = subprocess.run([str(EXE), *args], env=self._env(), capture_output=True, text=True, timeout=60, check=True)
        return out.stdout

    def create_key(self, name: str = "") -> tuple[str, str]:
        """(API key, webhook secret)."""
        lines = self.cli("keys", "create", "--name", name).splitlines()
        return lines[0].split()[-1], lines[1].split()[-1]

    def start(self) -> Service:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"serve-{self.port}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(EXE), "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=60, what=f"service on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"service exited: {self.log()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        )
        return [int(line.split()[0]) for line in out.stdout.splitlines() if "spawn_main" in line]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every POST; it can fail the first N."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.fail_first: dict[str, int] = {}  # path -> number of 500s to answer first
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
                    remaining = receiver.fail_first.get(self.path, 0)
                    if remaining:
                        receiver.fail_first[self.path] = remaining - 1
                self.send_response(500 if remaining else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_task(self, task_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.json().get("task_id") == task_id]

    def close(self) -> None:
        self.server.shutdown()


class FileServer:
    """Serves a directory on 127.0.0.1 (audio_path URLs for the worker)."""

    def __init__(self, root: Path) -> None:
        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; its endpoint URL."""
    port = free_port()
    log = (log_dir / "moto.log").open("wb")
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=30, what="moto server")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
