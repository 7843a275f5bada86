"""Issue 12, defect 4: the database or the store down -> 503 ``unavailable`` with ``Retry-After``,
logged once per outage, never 500 ``internal_error``.

A real `midiscribe serve` (API only) on a PostgreSQL cluster of its own (``initdb`` and ``pg_ctl`` on
a free port: the machine's server on 5432 is never touched) and moto's S3 server. The cluster is
stopped with ``pg_ctl -m immediate`` and moto is killed with SIGKILL while requests come in.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audiogen import encode, melody
from cluster_harness import ScratchRedis, ServiceDown, make_bucket, run_cli, s3_env, scratch_redis
from service_harness import MOTO, Service, free_port, wait_until

API = "/api/public/v1/audio_to_midi"
TASKS = "/api/public/v1/tasks"


class OwnPostgres:
    """A throw-away PostgreSQL cluster on a free port, trust authentication, run as ``postgres``."""

    def __init__(self, root: Path) -> None:
        self.root, self.data, self.port = root, root / "pgdata", free_port()
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        out = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.stdout[-1000:]} {out.stderr[-2000:]}")

    def init(self) -> OwnPostgres:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n")
            conf.write("fsync = off\n")
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """``-m immediate``: the server quits at once, dropping every connection (a crash, no checkpoint)."""
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


@pytest.fixture
def postgres() -> Iterator[OwnPostgres]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.fail("PostgreSQL's initdb and pg_ctl are needed (apt-get install postgresql)", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="midiscribe-pg-"))  # not under pytest's root-only tmp: postgres runs it
    try:
        pg = OwnPostgres(root).init()
        pg.start()
        yield pg
        pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=30, what="moto server")
    make_bucket(url, "results")
    yield url, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    log.close()


def _unavailable(r: httpx.Response, dependency: str) -> None:
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "unavailable" and dependency in error["message"], error
    assert int(r.headers["retry-after"]) >= 1


@pytest.fixture
def redis_db() -> Iterator[ScratchRedis]:
    try:
        with scratch_redis() as scratch:
            yield scratch
    except ServiceDown as exc:
        pytest.fail(str(exc), pytrace=False)


def test_database_and_store_down_are_503(
    tmp_path: Path, postgres: OwnPostgres, moto: tuple[str, subprocess.Popen[bytes]], redis_db: ScratchRedis
) -> None:
    """An API node of the distributed mode (the broker on the machine's Redis, a scratch database number)."""
    audio = encode(tmp_path / "t.flac", melody([(0.1, 0.4, 60)], 1.0, sr=22_050), sr=22_050, kind="flac").read_bytes()
    env = s3_env(moto[0], "results") | {
        "MIDISCRIBE_DATABASE_URL": postgres.url,
        "MIDISCRIBE_DATABASE_BUSY_TIMEOUT_S": "2",
        "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "1000",
        "AWS_MAX_ATTEMPTS": "2",
        "MIDISCRIBE_BROKER_URL": redis_db.url,
        "MIDISCRIBE_QUEUE_PREFIX": redis_db.prefix,
        "MIDISCRIBE_LOG_FORMAT": "json",
    }
    svc = Service(tmp_path / "api", workers=0, env=env)
    run_cli(svc._env(), "db", "upgrade")
    key, _ = svc.create_key("outages")
    svc.start()
    headers = {"Authorization": key}

    def submit() -> httpx.Response:
        return httpx.post(svc.url + API, headers=headers, files={"audio_file": ("t.flac", audio)}, timeout=30)

    try:
        first = submit()
        assert first.status_code == 200, first.text
        task_id = first.json()["task_id"]

        postgres.stop()
        answers = []
        for request in (submit, submit, lambda: httpx.get(f"{svc.url}{TASKS}/{task_id}", headers=headers)):
            started = time.monotonic()
            answers.append(request())
            assert time.monotonic() - started < 5, "a down database must answer fast"
        for r in answers:
            _unavailable(r, "database")
        postgres.start()
        r = wait_until(lambda: (r := submit()).status_code == 200 and r, timeout=30, what="database back")

        moto[1].send_signal(signal.SIGKILL)
        moto[1].wait(10)
        for _ in range(2):
            started = time.monotonic()
            _unavailable(submit(), "store")
            assert time.monotonic() - started < 10, "a down store must answer fast"
        status = httpx.get(f"{svc.url}{TASKS}/{task_id}", headers=headers)
        assert status.status_code == 200  # reading a task needs only the database
    finally:
        svc.stop()
    assert svc.log_path is not None
    records = [json.loads(line) for line in svc.log_path.read_text().splitlines() if line.startswith("{")]
    warned = [r["message"].split(" (")[0] for r in records if r["level"] == "WARNING"]
    assert warned.count("database unavailable") == 1 and warned.count("store unavailable") == 1, warned
    # The node's webhook sender met the outage too: one line when it began, one when it ended.
    assert warned.count("webhook sender: reading deliveries failing") == 1, warned
    ours = [r for r in records if r["logger"] in ("midiscribe.api", "midiscribe.webhooks")]
    assert not [r for r in ours if r["level"] == "ERROR" or "exc" in r], ours
