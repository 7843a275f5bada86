"""The distributed mode against real servers: the machine's PostgreSQL and Redis, moto's S3 server,
two `midiscribe serve` API nodes and two `midiscribe worker` nodes on 127.0.0.1.

Each run uses its own PostgreSQL database, Redis database number and queue names, dropped after.
The embedded mode is covered by test_service.py, unchanged.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from audiogen import encode, melody
from cluster_harness import (
    ScratchRedis,
    ServiceDown,
    Worker,
    make_bucket,
    run_cli,
    s3_env,
    scratch_postgres,
    scratch_redis,
)
from midiscribe.service.outside.webhooks import verify
from midiscribe.service.records.migrate import head
from service_harness import Receiver, Service, moto_server, wait_until

API = "/api/public/v1/audio_to_midi"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("media")

    def clip(name: str, seconds: float) -> bytes:
        events = [(0.2 + 0.5 * i, 0.4, 55 + (i % 20)) for i in range(int(seconds * 2) - 1)]
        return encode(root / name, melody(events, seconds, sr=22_050), sr=22_050, kind="flac").read_bytes()

    return {"short": clip("short.flac", 3.0), "medium": clip("medium.flac", 30.0), "long": clip("long.flac", 240.0)}


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    try:
        with scratch_postgres() as url:
            yield url
    except ServiceDown as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def redis_db() -> Iterator[ScratchRedis]:
    try:
        with scratch_redis() as scratch:
            yield scratch
    except ServiceDown as exc:
        pytest.fail(str(exc), pytrace=False)


@dataclass
class Cluster:
    apis: list[Service]
    workers: list[Worker]
    env: dict[str, str]
    key: str
    secret: str
    receiver: Receiver
    engine: sa.Engine
    redis: ScratchRedis
    root: Path

    def submit(self, i: int, audio: bytes, hook: str = "hook") -> str:
        api = self.apis[i % len(self.apis)]
        r = httpx.post(
            api.url + API,
            headers={"Authorization": self.key},
            files={"audio_file": (f"clip{i}.flac", audio)},
            data={"webhook_url": f"{self.receiver.url}/{hook}", "sonify_midi": "false"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        task_id: str = r.json()["task_id"]
        return task_id

    def status(self, task_id: str, i: int = 0) -> dict[str, Any]:
        api = self.apis[i % len(self.apis)]
        r = httpx.get(f"{api.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": self.key}, timeout=10)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def all_finished(self, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        def done() -> dict[str, dict[str, Any]] | None:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT id, status FROM tasks WHERE id = ANY(:ids)"), {"ids": ids}).all()
            if sum(r.status in ("completed", "failed") for r in rows) < len(ids):
                return None
            return {task_id: self.status(task_id, n) for n, task_id in enumerate(ids)}

        result: dict[str, dict[str, Any]] = wait_until(done, timeout=timeout, interval=0.5, what=f"{len(ids)} tasks")
        return result

    def one_webhook_each(self, ids: list[str]) -> None:
        """Every task's webhook arrives once, signed, whichever API node's sender took it."""
        hooks = wait_until(lambda: all(self.receiver.for_task(t) for t in ids) and ids, timeout=60, what="webhooks")
        time.sleep(1.0)  # room for a second sender's duplicate, if there were one
        for task_id in hooks:
            deliveries = self.receiver.for_task(task_id)
            assert len(deliveries) == 1 and len({d.headers["webhook-id"] for d in deliveries}) == 1
            assert all(verify(self.secret, d.headers, d.body) for d in deliveries)
            assert deliveries[0].json()["success"] is True
        with self.engine.connect() as conn:
            n = conn.execute(
                sa.text("SELECT count(*) FROM webhook_deliveries WHERE task_id = ANY(:ids)"), {"ids": ids}
            ).scalar_one()
        assert n == len(ids)

    def lease_owner_pid(self, task_id: str) -> int | None:
        with self.engine.connect() as conn:
            owner = conn.execute(sa.text("SELECT lease_owner FROM tasks WHERE id = :id"), {"id": task_id}).scalar()
        return int(owner.rsplit(":", 1)[1]) if owner else None

    def start_worker(self, index: int) -> Worker:
        return Worker(self.root / f"worker{index}", env=self.env).start()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg: str, redis_db: ScratchRedis) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    receiver = Receiver()
    with moto_server(root) as endpoint:
        make_bucket(endpoint, "results")
        env = s3_env(endpoint, "results") | {
            "MIDISCRIBE_DATABASE_URL": pg,
            "MIDISCRIBE_BROKER_URL": redis_db.url,
            "MIDISCRIBE_QUEUE_PREFIX": redis_db.prefix,
            "MIDISCRIBE_LONG_AUDIO_S": "20",
            "MIDISCRIBE_LEASE_S": "5",
            "MIDISCRIBE_SWEEP_INTERVAL_S": "1",
            "MIDISCRIBE_REDISPATCH_AFTER_S": "4",
            "MIDISCRIBE_LOG_FORMAT": "json",
            "MIDISCRIBE_SIGNING_SECRET": "cluster-test-signing-secret-0123456789",
            "MIDISCRIBE_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
            "MIDISCRIBE_WEBHOOK_SCHEDULE_S": "0,0.3,0.6,1.0,2.0",
            "MIDISCRIBE_RATE_LIMIT_PER_MINUTE": "1000",
            "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "1000",
        }
        apis = [Service(root / f"api{i}", env=env, workers=0) for i in range(2)]
        cli_env = apis[0]._env()
        with pytest.raises(AssertionError, match="midiscribe db upgrade"):
            run_cli(cli_env, "keys", "create")  # API nodes don't migrate: they say how to
        assert f"revision {head()}" in run_cli(cli_env, "db", "upgrade")
        assert f"revision {head()}" in run_cli(cli_env, "db", "upgrade")  # safe to repeat
        key, secret = apis[0].create_key("cluster")
        workers = [Worker(root / f"worker{i}", env=env).start() for i in range(2)]
        engine = sa.create_engine(pg)
        try:
            for api in apis:
                api.start()
            for worker in workers:
                worker.wait_ready()
            yield Cluster(apis, workers, env, key, secret, receiver, engine, redis_db, root)
        finally:
            for node in [*workers]:
                node.stop()
            for api in apis:
                api.stop()
            engine.dispose()
            receiver.close()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)$", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match[3])
    return total


def test_twenty_submissions_over_two_apis(cluster: Cluster, media: dict[str, bytes]) -> None:
    ids = [cluster.submit(i, media["medium"] if i % 10 == 9 else media["short"]) for i in range(20)]
    tasks = cluster.all_finished(ids, timeout=120)
    assert {t["status"] for t in tasks.values()} == {"completed"}, [t["error"] for t in tasks.values()]
    assert all(t["result"]["midi_file_path"].startswith("http") for t in tasks.values())
    cluster.one_webhook_each(ids)
    midi = httpx.get(cluster.receiver.for_task(ids[0])[0].json()["midi_file_path"], timeout=10)
    assert midi.status_code == 200 and midi.content.startswith(b"MThd")

    # Routing: the 30 s clips went to the long queue, the 3 s ones to the default queue.
    logs = "".join(w.log() for w in cluster.workers)
    prefix = cluster.redis.prefix
    for i, task_id in enumerate(ids):
        queue = f"{prefix}.long" if i % 10 == 9 else f"{prefix}.default"
        assert f"task {task_id}: delivered from {queue}" in logs
    # Both workers took part; the log lines are JSON with the task id.
    assert all("completed" in w.log() for w in cluster.workers)
    lines = [json.loads(x) for x in cluster.workers[0].log().splitlines() if x.startswith("{")]
    assert any(x["task_id"] in ids and x["message"].endswith(": completed") for x in lines)

    # Metrics: the API counts requests and reads tasks by state; each worker counts its runs.
    api_metrics = httpx.get(cluster.apis[0].url + "/metrics").text
    assert metric(api_metrics, "midiscribe_tasks", state="completed") >= 20
    assert metric(api_metrics, "midiscribe_http_requests_total", route=API, status="200") >= 10
    assert f'midiscribe_queue_depth{{queue="{prefix}.long"}}' in api_metrics
    scraped = [httpx.get(w.metrics_url).text for w in cluster.workers]
    runs = sum(metric(text, "midiscribe_task_runs_total", outcome="completed") for text in scraped)
    assert runs >= 20
    assert all(metric(text, "midiscribe_task_duration_seconds_count") >= 1 for text in scraped)
    audio = sum(metric(text, "midiscribe_audio_processed_seconds_total") for text in scraped)
    assert audio == pytest.approx(18 * 3.0 + 2 * 30.0, rel=0.05)


def test_worker_killed_mid_task_completes_on_the_other(cluster: Cluster, media: dict[str, bytes]) -> None:
    task_id = cluster.submit(0, media["long"], hook="killed")
    wait_until(lambda: cluster.status(task_id)["progress"] >= 20, timeout=60, interval=0.05, what="task under way")
    pid = cluster.lease_owner_pid(task_id)
    victim = next(i for i, w in enumerate(cluster.workers) if pid in w.pids())
    cluster.workers[victim].kill()
    survivor = cluster.workers[1 - victim]
    task = cluster.all_finished([task_id], timeout=120)[task_id]
    assert task["status"] == "completed", task
    assert task["result"]["n_notes"] > 400
    assert f"task {task_id}: completed" in survivor.log()
    assert f"task {task_id}: completed" not in cluster.workers[victim].log()
    cluster.one_webhook_each([task_id])
    cluster.workers[victim] = cluster.start_worker(victim + 2).wait_ready()


def test_broker_connections_dropped_and_messages_lost(cluster: Cluster, media: dict[str, bytes]) -> None:
    ids = [cluster.submit(i, media["short"], hook="broker") for i in range(6)]
    killed = cluster.redis.drop_connections()  # every node's broker connection, mid-run
    assert killed >= 2
    cluster.redis.drop_queues()  # and the messages still waiting: a restart without persistence
    ids += [cluster.submit(i, media["short"], hook="broker") for i in range(6, 10)]  # publishers reconnect
    time.sleep(0.5)
    cluster.redis.drop_connections()
    tasks = cluster.all_finished(ids, timeout=90)
    assert {t["status"] for t in tasks.values()} == {"completed"}
    cluster.one_webhook_each(ids)
    api_logs = "".join(api.log() for api in cluster.apis)
    assert "sweep: re-published" in api_logs


def test_migrations_match_the_tables(pg: str, tmp_path: Path) -> None:
    """The migrations build exactly the tables the code uses, on PostgreSQL and SQLite, and a
    database made before migrations existed is adopted, not rebuilt."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from midiscribe.service.records import migrate
    from midiscribe.service.records.db import make_engine, metadata

    legacy = make_engine(f"sqlite:///{tmp_path / 'legacy.db'}")
    migrate.upgrade(legacy, "0001")
    with legacy.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))  # as create_all left it
    for engine in (make_engine(pg), make_engine(f"sqlite:///{tmp_path / 'new.db'}"), legacy):
        assert migrate.upgrade(engine) == migrate.head()
        migrate.check(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []
        engine.dispose()


def test_embedded_mode_migrates_and_reports_worker_metrics(tmp_path: Path, media: dict[str, bytes]) -> None:
    """Without a broker, `serve` migrates SQLite at start and its /metrics includes the runs of
    the worker processes it spawned."""
    svc = Service(tmp_path / "embedded", workers=1)
    key, _ = svc.create_key()
    svc.start()
    try:
        r = httpx.post(svc.url + API, headers={"Authorization": key}, files={"audio_file": ("a.flac", media["short"])})
        task_id = r.json()["task_id"]
        wait_until(
            lambda: (
                httpx.get(f"{svc.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": key}).json()["status"]
                == "completed"
            ),
            what="task",
        )
        text = httpx.get(svc.url + "/metrics").text
        assert metric(text, "midiscribe_task_runs_total", outcome="completed") == 1
        assert metric(text, "midiscribe_audio_processed_seconds_total") == pytest.approx(3.0, rel=0.05)
        assert metric(text, "midiscribe_tasks", state="completed") == 1
        assert metric(text, "midiscribe_queue_depth", queue="embedded") == 0
    finally:
        svc.stop()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'embedded' / 'midiscribe.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head()
    engine.dispose()


def test_settings_route_and_limit_by_duration() -> None:
    from pydantic import ValidationError

    from midiscribe.service.settings import Settings

    s = Settings(broker_url="redis://127.0.0.1:6379/0", queue_prefix="q", long_audio_s=600)
    assert s.distributed and s.queue_for(30) == "q.default" and s.queue_for(601) == "q.long"
    assert s.queue_for(None) == "q.default"
    assert s.task_time_limit_s(60) == 300 + 60 and s.task_time_limit_s(None) == 300 + 7200
    assert s.effective_visibility_timeout_s > s.longest_task_s > s.task_time_limit_s(None)
    assert "pw" not in str(Settings(broker_url="amqp://u:pw@rabbit:5672//").masked())
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT_S"):
        Settings(broker_url="redis://x", visibility_timeout_s=3600)
    with pytest.raises(ValidationError, match="BROKER_URL"):
        Settings(broker_url="kafka://x")
