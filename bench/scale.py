"""Scaling out: tasks completed per minute by 1, 2 and 4 Celery worker processes on this machine.

Starts one API node (`midiscribe serve` with a broker) and, for each process count, one
`midiscribe worker --concurrency N` on a scratch PostgreSQL database and a scratch Redis database
(the machine's servers; dropped afterwards), with the local store in a shared temporary
directory. Each round submits the same fixed batch of ``--clip-s`` second clips of real music (an
upload each) once the worker has loaded the model, and times from the first submission to the
last task finished. Prints tasks per minute and the ratio to one process. Loopback only.

    .venv/bin/python bench/scale.py --count 48 --clip-s 30 --processes 1,2,4 [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' cluster harness
from _audio import test_recording
from cluster_harness import Worker, run_cli, scratch_postgres, scratch_redis
from service_harness import Service, wait_until

API = "/api/public/v1/audio_to_midi"


def round_trip(api: Service, key: str, engine: sa.Engine, audio: bytes, count: int) -> float:
    """Seconds from the first submission to the last task of the batch finished."""
    started = time.perf_counter()
    ids = []
    with httpx.Client(base_url=api.url, headers={"Authorization": key}, timeout=60) as client:
        for i in range(count):
            r = client.post(API, files={"audio_file": (f"clip{i}.wav", audio)}, data={"sonify_midi": "false"})
            r.raise_for_status()
            ids.append(r.json()["task_id"])

    def finished() -> bool:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status FROM tasks WHERE id = ANY(:ids)"), {"ids": ids}).all()
        failed = [r for r in rows if r.status == "failed"]
        if failed:
            raise SystemExit(f"{len(failed)} task(s) failed")
        return sum(r.status == "completed" for r in rows) == count

    wait_until(finished, timeout=3600, interval=0.2, what="the batch")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=48, help="clips per round (at most 200)")
    parser.add_argument("--clip-s", type=float, default=30.0)
    parser.add_argument("--processes", default="1,2,4", help="worker process counts to measure")
    parser.add_argument("--threads", type=int, default=None, help="inference threads per process (default cores/N)")
    args = parser.parse_args()
    count = max(1, min(args.count, 200))
    counts = [int(n) for n in args.processes.split(",")]
    audio = test_recording(args.clip_s).read_bytes()
    threads = f"{args.threads} thread(s)" if args.threads else "cores/N threads"
    print(f"batch: {count} clips of {args.clip_s:g} s of music; {os.cpu_count()} cores, {threads} per process")
    results: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres() as pg, scratch_redis() as redis_db:
        root = Path(tmp)
        env = {
            "MIDISCRIBE_DATABASE_URL": pg,
            "MIDISCRIBE_BROKER_URL": redis_db.url,
            "MIDISCRIBE_QUEUE_PREFIX": redis_db.prefix,
            "MIDISCRIBE_RATE_LIMIT_PER_MINUTE": "100000",
            "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "100000",
            "MIDISCRIBE_LEASE_S": "30",
        }
        api = Service(root / "api", env=env, workers=0)
        run_cli(api._env(), "db", "upgrade")
        key = api.create_key("bench")[0]
        api.start()
        engine = sa.create_engine(pg)
        # The worker shares the API's data dir: the local store is one directory on one machine.
        worker_env = env | {"MIDISCRIBE_DATA_DIR": str(root / "api"), "MIDISCRIBE_PUBLIC_BASE_URL": api.url}
        try:
            for n in counts:
                worker = Worker(root / f"worker{n}", env=worker_env, concurrency=n, threads=args.threads)
                worker.start().wait_ready(timeout=180)
                try:
                    seconds = round_trip(api, key, engine, audio, count)
                finally:
                    worker.stop()
                results[n] = count / seconds * 60
                rate = f"{results[n]:6.1f} tasks/min"
                print(f"  {n} process(es): {count} tasks in {seconds:6.1f} s  -> {rate}", flush=True)
        finally:
            engine.dispose()
            api.stop()
    base = results[counts[0]]
    print("processes  tasks/min  ratio")
    for n, rate in results.items():
        print(f"{n:9d}  {rate:9.1f}  {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
