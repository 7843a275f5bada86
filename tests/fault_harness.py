"""Servers a fault test may kill: its own ``redis-server``, its own PostgreSQL cluster (``initdb`` and
``pg_ctl``) and a TCP proxy that cuts a path (to moto's S3 server) without losing the server's state.

The machine's Redis (6379) and PostgreSQL (5432) are never touched: each of these listens on a free
port of its own and is removed afterwards. Used by tests/test_faults.py and bench/faults.py.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from service_harness import free_port, wait_until


class OwnRedis:
    """A ``redis-server`` of our own on a free port, killed with SIGKILL and started again on the same port."""

    def __init__(self, root: Path, *, appendonly: bool = False) -> None:
        self.root, self.appendonly = root, appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)]
        args += ["--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        args += ["--protected-mode", "no"]
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.up, timeout=20, interval=0.05, what=f"redis-server on {self.port}")
        return self

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=3)

    def up(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:
            return False

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye to the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def consumers(self) -> int:
        """Clients blocked in BRPOP right now: workers that are listening for tasks."""
        return sum(1 for c in self.client().client_list() if c.get("cmd") == "brpop")

    def stop(self) -> None:
        self.kill()


class OwnPostgres:
    """A PostgreSQL cluster of our own (``initdb`` on a free port, trust auth), stopped with
    ``pg_ctl stop -m immediate`` (the server's own SIGQUIT: no checkpoint) and started again."""

    def __init__(self, root: Path) -> None:
        """``root``: a new folder that the ``postgres`` user can reach when we run as root (the
        server refuses to run as root), e.g. one under a 0755 folder in /tmp."""
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.user = "postgres"
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            root.chmod(0o755)
            shutil.chown(root, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/midiscribe"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PGPORT": str(self.port)}

    def init(self) -> OwnPostgres:
        args = ["initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "--no-sync", "-E", "UTF8"]
        self._run(*args)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n")
            conf.write("fsync = off\nmax_connections = 100\n")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "midiscribe")
        return self

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, env=self._env(), timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class TcpProxy:
    """127.0.0.1:port -> target. ``down()`` closes the listener and resets every open connection (the
    server looks gone: connection refused); ``up()`` listens again on the same port. The server
    behind keeps its state, as a real S3 does across a network outage."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, server}
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._conns -= {a, b}


def wait_for(predicate: object, timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held."""
    started = time.monotonic()
    wait_until(predicate, timeout=timeout, interval=0.2, what=what)
    return time.monotonic() - started
