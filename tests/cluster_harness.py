"""Real services for the distributed tests and the scaling bench: a scratch PostgreSQL database
and Redis database on the machine's servers, moto's S3 server, and `midiscribe worker` nodes.

Every run gets its own database and queue names, removed afterwards, so runs don't collide
with each other or with other users of the same servers. Unreachable servers fail at once with
a message saying which one, never a hang.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from service_harness import EXE, free_port, wait_until

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


class ServiceDown(RuntimeError):
    """A server the tests need is not running."""


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A fresh database on the local PostgreSQL (dropped afterwards); its SQLAlchemy URL."""
    import psycopg

    name = f"midiscribe_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise ServiceDown(f"PostgreSQL is not reachable at {PG_ADMIN} (start it first): {exc}") from exc
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ScratchRedis:
    """An empty Redis database number and a unique queue prefix for this run."""

    db: int
    prefix: str

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.db}"

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.db, socket_connect_timeout=3, socket_timeout=5)

    def drop_connections(self) -> int:
        """Close every client connection on this run's database (ours only: other users stay)."""
        r = self.client()
        me = r.client_id()
        killed = 0
        for client in r.client_list():
            if int(client["db"]) == self.db and int(client["id"]) != me:
                killed += int(bool(r.execute_command("CLIENT", "KILL", "ID", client["id"])))
        return killed

    def drop_queues(self) -> int:
        """Delete this run's queues with their messages, as a broker restart without persistence does."""
        r = self.client()
        keys = list(r.scan_iter(f"{self.prefix}.*"))
        return int(r.delete(*keys)) if keys else 0

    def cleanup(self) -> None:
        r = self.client()
        for key in r.scan_iter(f"*{self.prefix}*"):
            r.delete(key)
        leftover = {k.decode() for k in r.scan_iter("*")}
        if leftover <= {"unacked", "unacked_index", "unacked_mutex"}:
            r.delete(*leftover) if leftover else None


@contextlib.contextmanager
def scratch_redis() -> Iterator[ScratchRedis]:
    import redis

    try:
        r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3, socket_timeout=5)
        r.ping()
    except redis.RedisError as exc:
        raise ServiceDown(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} (start it first): {exc}") from exc
    candidates = list(range(1, 16))
    random.shuffle(candidates)
    db = next(
        (n for n in candidates if redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n).dbsize() == 0),
        candidates[0],
    )
    scratch = ScratchRedis(db, f"mstest{uuid.uuid4().hex[:8]}")
    try:
        yield scratch
    finally:
        scratch.cleanup()


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MIDISCRIBE_STORE": "s3",
        "MIDISCRIBE_S3_BUCKET": bucket,
        "MIDISCRIBE_S3_ENDPOINT_URL": endpoint,
        "MIDISCRIBE_S3_REGION": "us-east-1",
        "MIDISCRIBE_S3_ADDRESSING_STYLE": "path",
    }


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, **credentials).create_bucket(Bucket=bucket)


def run_cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([str(EXE), *args], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"midiscribe {' '.join(args)} failed: {out.stderr[-3000:]}")
    return out.stdout


@dataclass
class Worker:
    """`midiscribe worker` in its own process group, so a test can kill the whole node at once."""

    data_dir: Path
    env: dict[str, str]
    concurrency: int = 1
    queues: str = "default,long"
    threads: int | None = None
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self) -> Worker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"worker-{self.metrics_port}.log"
        metrics_dir = self.data_dir / f"metrics-{self.metrics_port}"  # not in /tmp: a killed node leaves it
        metrics_dir.mkdir()
        args = ["worker", "--concurrency", str(self.concurrency), "--queues", self.queues]
        args += ["--metrics-port", str(self.metrics_port)]
        args += ["--threads", str(self.threads)] if self.threads else []
        self.proc = subprocess.Popen(
            [str(EXE), *args],
            env={
                **os.environ,
                "MIDISCRIBE_DATA_DIR": str(self.data_dir),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                **self.env,
            },
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 90) -> Worker:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited: {self.log()}")
            return self.log().count("ready (") >= self.concurrency  # each process: model loaded

        wait_until(ready, timeout=timeout, interval=0.2, what=f"worker on metrics port {self.metrics_port}")
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "-g", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the whole node: the main process and its pool, mid-task, no goodbye."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
