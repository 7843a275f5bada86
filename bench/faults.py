"""The distributed mode under faults (issue 12): a table of what each fault costs.

Each scenario starts a fresh cluster of its own processes on 127.0.0.1 — a ``redis-server`` on a
free port, a PostgreSQL cluster of its own (``initdb``/``pg_ctl``, one database per scenario),
moto's S3 server behind a TCP proxy, 2 API nodes (``midiscribe serve``), 2 worker nodes
(``midiscribe worker``) and a webhook receiver behind a TCP proxy — submits ``--tasks`` uploads of an
8 s clip (half to each API node), injects the fault while both workers are busy, and waits for
every accepted task to finish. The machine's own Redis and PostgreSQL are never touched.

Columns: submitted (accepted, 200), completed, failed, stuck (not finished ``--deadline-s`` after the
fault ended), duplicate (tasks whose webhook reached the receiver more than once; same
``webhook-id``, so a receiver can drop it), lost (accepted tasks with no record, or finished
without their webhook arriving by the deadline), recovery (seconds from the fault's end — the
dependency back, or the kill for node kills — to the last task finished with its webhook; it
includes the backlog, about ``--tasks`` x 1 s of work for 2 workers). ``hung_webhooks`` points 10
extra tasks' webhooks at endpoints that accept and never answer and reports, as recovery, the
worst delay of the healthy receiver's webhooks past their task's end.

    .venv/bin/python bench/faults.py [--outage-s 15] [--tasks 12] [--only redis_kill_aof_off,s3_stop]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' harnesses
from audiogen import encode, melody
from cluster_harness import Worker, make_bucket, run_cli, s3_env
from fault_harness import OwnPostgres, OwnRedis, TcpProxy
from service_harness import Service, moto_server, wait_until

API = "/api/public/v1/audio_to_midi"
SCENARIOS = (
    "worker_kill",
    "both_workers_killed",
    "api_node_kill",
    "redis_kill_aof_off",
    "redis_kill_aof_on",
    "postgres_stop",
    "s3_stop",
    "webhook_receiver_down",
    "hung_webhooks",
)


class Receiver:
    """Records each webhook POST with the time it arrived."""

    def __init__(self) -> None:
        self.got: list[tuple[float, float, str]] = []  # (monotonic time, wall-clock time, task id)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import json

                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                task_id = json.loads(body).get("task_id", "")
                with outer._lock:
                    outer.got.append((time.monotonic(), time.time(), task_id))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def times(self, task_id: str) -> list[float]:
        with self._lock:
            return [t for t, _, tid in self.got if tid == task_id]

    def wall_times(self, task_id: str) -> list[float]:
        with self._lock:
            return [w for _, w, tid in self.got if tid == task_id]


class Hung:
    """Endpoints that accept a connection and never answer."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


@dataclass
class Cluster:
    root: Path
    db_url: str
    redis: OwnRedis
    s3: TcpProxy
    hooks: TcpProxy
    receiver: Receiver
    env: dict[str, str]
    apis: list[Service] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    key: str = ""

    def start(self) -> Cluster:
        self.apis = [Service(self.root / f"api{i}", env=self.env, workers=0) for i in range(2)]
        run_cli(self.apis[0]._env(), "db", "upgrade")
        self.key, _ = self.apis[0].create_key("faults")
        self.workers = [self.worker(i) for i in range(2)]
        for api in self.apis:
            api.start()
        for worker in self.workers:
            worker.wait_ready()
        return self

    def worker(self, i: int) -> Worker:
        return Worker(self.root / f"worker{i}-{time.monotonic_ns()}", env=self.env, threads=1).start()

    def submit(self, audio: bytes, n: int, hook: Callable[[int], str] | None = None) -> list[str]:
        ids = []
        for i in range(n):
            url = hook(i) if hook else f"http://127.0.0.1:{self.hooks.port}/hook"
            r = httpx.post(
                self.apis[i % 2].url + API,
                headers={"Authorization": self.key},
                files={"audio_file": (f"clip{i}.flac", audio)},
                data={"webhook_url": url, "sonify_midi": "false"},
                timeout=30,
            )
            if r.status_code == 200:
                ids.append(r.json()["task_id"])
        return ids

    def rows(self, ids: list[str]) -> dict[str, Any]:
        engine = sa.create_engine(self.db_url, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT * FROM tasks WHERE id = ANY(:ids)"), {"ids": ids}).all()
            return {r.id: r for r in rows}
        except Exception:
            return {}
        finally:
            engine.dispose()

    def busy(self, ids: list[str]) -> int:
        return len({r.lease_owner for r in self.rows(ids).values() if r.status == "processing"})

    def stop(self) -> None:
        for node in [*self.workers, *self.apis]:
            with contextlib.suppress(Exception):
                node.stop(timeout=20)


@contextlib.contextmanager
def cluster(base: Path, pg: OwnPostgres, name: str, *, appendonly: bool = False) -> Iterator[Cluster]:
    root = base / name
    root.mkdir()
    pg._run("createdb", "-h", "127.0.0.1", "-p", str(pg.port), "-U", pg.user, name)
    db_url = pg.url.rsplit("/", 1)[0] + f"/{name}"
    redis = OwnRedis(root / "redis", appendonly=appendonly).start()
    receiver = Receiver()
    hooks = TcpProxy(receiver.port).up()
    with moto_server(root) as endpoint:
        make_bucket(endpoint, "results")
        s3 = TcpProxy(int(endpoint.rsplit(":", 1)[1])).up()
        env = s3_env(s3.url, "results") | {
            "MIDISCRIBE_DATABASE_URL": db_url,
            "MIDISCRIBE_BROKER_URL": redis.url,
            "MIDISCRIBE_QUEUE_PREFIX": "faults",
            "MIDISCRIBE_LEASE_S": "10",
            "MIDISCRIBE_SWEEP_INTERVAL_S": "5",
            "MIDISCRIBE_REDISPATCH_AFTER_S": "15",
            "MIDISCRIBE_WORKER_HEARTBEAT_S": "5",
            "MIDISCRIBE_WEBHOOK_SCHEDULE_S": "0,2,5,10,20,40",
            "MIDISCRIBE_SIGNING_SECRET": "faults-bench-signing-secret-0123456789",
            "MIDISCRIBE_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
            "MIDISCRIBE_RATE_LIMIT_PER_MINUTE": "10000",
            "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "10000",
        }
        c = Cluster(root, db_url, redis, s3, hooks, receiver, env)
        try:
            yield c.start()
        finally:
            c.stop()
            s3.down()
            hooks.down()
            redis.stop()


@dataclass
class Outcome:
    name: str
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    stuck: int = 0
    duplicate: int = 0
    lost: int = 0
    recovery_s: float | None = None
    note: str = ""


def settle(c: Cluster, ids: list[str], fault_end: float, deadline_s: float, name: str) -> Outcome:
    """Wait for every task and its webhook, then count."""

    def done() -> bool:
        rows = c.rows(ids)
        finished = [r for r in rows.values() if r.status in ("completed", "failed")]
        return len(finished) == len(ids) and all(c.receiver.times(t) for t in ids)

    with contextlib.suppress(AssertionError):
        wait_until(done, timeout=deadline_s, interval=0.5, what="tasks and webhooks")
    time.sleep(3)  # room for late duplicates
    rows = c.rows(ids)
    out = Outcome(name, submitted=len(ids))
    out.completed = sum(r.status == "completed" for r in rows.values())
    out.failed = sum(r.status == "failed" for r in rows.values())
    out.stuck = sum(r.status in ("queued", "processing") for r in rows.values())
    out.duplicate = sum(len(c.receiver.times(t)) > 1 for t in ids)
    out.lost = (len(ids) - len(rows)) + sum(
        1 for t, r in rows.items() if r.status in ("completed", "failed") and not c.receiver.times(t)
    )
    ends = [max(c.receiver.times(t)) for t in ids if c.receiver.times(t)]
    if not out.stuck and not out.lost and ends:
        out.recovery_s = max(0.0, max(ends) - fault_end)
    errors = {r.error_code for r in rows.values() if r.status == "failed"}
    out.note = ", ".join(sorted(errors))
    return out


def wait_busy(c: Cluster, ids: list[str], n: int = 2) -> None:
    wait_until(lambda: c.busy(ids) >= n, timeout=60, interval=0.05, what="workers busy")


def run(name: str, base: Path, pg: OwnPostgres, audio: bytes, args: argparse.Namespace) -> Outcome:
    aof = name == "redis_kill_aof_on"
    with cluster(base, pg, name, appendonly=aof) as c:
        ids = c.submit(audio, args.tasks)
        wait_busy(c, ids)
        if name == "worker_kill":
            c.workers[0].kill()
            end = time.monotonic()
        elif name == "both_workers_killed":
            for w in c.workers:
                w.kill()
            time.sleep(args.outage_s)
            end = time.monotonic()
            c.workers = [c.worker(i) for i in range(2)]
        elif name == "api_node_kill":
            c.hooks.down()  # webhooks pile up on both nodes...
            wait_until(lambda: len([r for r in c.rows(ids).values() if r.status == "completed"]) >= 4, timeout=60)
            assert c.apis[0].proc is not None
            c.apis[0].proc.send_signal(signal.SIGKILL)  # ...and one node dies holding its share
            c.apis[0].proc.wait(10)
            c.hooks.up()
            end = time.monotonic()
        elif name.startswith("redis_kill"):
            c.redis.kill()
            time.sleep(args.outage_s)
            c.redis.start()
            end = time.monotonic()
        elif name == "postgres_stop":
            pg.stop()
            time.sleep(args.outage_s)
            pg.start()
            end = time.monotonic()
        elif name == "s3_stop":
            c.s3.down()
            time.sleep(args.outage_s)
            c.s3.up()
            end = time.monotonic()
        elif name == "webhook_receiver_down":
            c.hooks.down()
            time.sleep(args.outage_s)
            c.hooks.up()
            end = time.monotonic()
        else:
            raise SystemExit(f"unknown scenario {name}")
        return settle(c, ids, end, args.deadline_s, name)


def run_hung(base: Path, pg: OwnPostgres, audio: bytes, args: argparse.Namespace) -> Outcome:
    """10 tasks whose webhooks go to endpoints that never answer, then healthy ones: how late are
    the healthy receiver's webhooks (task finished -> webhook arrived)?"""
    with cluster(base, pg, "hung_webhooks") as c:
        hung = [Hung() for _ in range(10)]
        c.submit(audio, 10, hook=lambda i: f"http://127.0.0.1:{hung[i].port}/hook")
        time.sleep(2)
        ids = c.submit(audio, args.tasks)
        out = settle(c, ids, time.monotonic(), args.deadline_s, "hung_webhooks")
        delays = [
            min(c.receiver.wall_times(t)) - r.finished_at.timestamp()  # one machine, one clock
            for t, r in c.rows(ids).items()
            if r.finished_at is not None and c.receiver.wall_times(t)
        ]
        out.recovery_s = max(delays) if delays else None
        if delays:
            out.note = f"recovery = worst healthy-webhook delay; median {sorted(delays)[len(delays) // 2]:.2f} s"
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--outage-s", type=float, default=15.0)
    parser.add_argument("--deadline-s", type=float, default=180.0)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    base = Path(tempfile.mkdtemp(prefix="midiscribe-faults-"))
    base.chmod(0o755)
    pg = OwnPostgres(base / "pg").init()
    events = [(0.2 + 0.5 * i, 0.4, 55 + (i % 20)) for i in range(15)]
    audio = encode(base / "clip.flac", melody(events, 8.0, sr=22_050), sr=22_050, kind="flac").read_bytes()
    results = []
    try:
        for name in names:
            started = time.monotonic()
            out = run_hung(base, pg, audio, args) if name == "hung_webhooks" else run(name, base, pg, audio, args)
            results.append(out)
            print(f"# {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        pg.close()
        if not os.environ.get("KEEP"):
            shutil.rmtree(base, ignore_errors=True)
    print(f"outage {args.outage_s:.0f} s, {args.tasks} tasks of 8 s audio per scenario, 2 API + 2 worker nodes")
    print(
        f"{'scenario':<24} {'submitted':>9} {'completed':>9} {'failed':>6} {'stuck':>5} {'dup':>4} {'lost':>4} "
        f"{'recovery':>9}  note"
    )
    for o in results:
        rec = f"{o.recovery_s:.1f} s" if o.recovery_s is not None else "-"
        print(
            f"{o.name:<24} {o.submitted:>9} {o.completed:>9} {o.failed:>6} {o.stuck:>5} {o.duplicate:>4} "
            f"{o.lost:>4} {rec:>9}  {o.note}"
        )


if __name__ == "__main__":
    main()
