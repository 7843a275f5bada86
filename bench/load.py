"""Load on the running service: many concurrent submissions from a second process.

Starts `midiscribe serve` on 127.0.0.1 with a temporary data dir (or uses ``--url`` with
``--key``), then fires ``--count`` submissions of a ``--clip-s`` second clip (an upload each),
``--concurrency`` at a time, and waits for every task to finish. Prints submission
latency p50/p99 and completed tasks per minute. Bounded in count and time; loopback only.

    .venv/bin/python bench/load.py --count 40 --concurrency 8 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _audio import test_recording

API = "/api/public/v1/audio_to_midi"


def clip_bytes(seconds: float) -> bytes:
    return test_recording(seconds).read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(data_dir: Path, port: int, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    exe = str(Path(sys.executable).with_name("midiscribe"))
    env = dict(
        os.environ,
        MIDISCRIBE_DATA_DIR=str(data_dir),
        MIDISCRIBE_RATE_LIMIT_PER_MINUTE="100000",
        MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY="100000",
        MIDISCRIBE_POLL_INTERVAL_S="0.1",
    )
    out = subprocess.run([exe, "keys", "create"], env=env, capture_output=True, text=True, check=True).stdout
    key = out.splitlines()[0].split()[-1]
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, key
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("service did not start")


async def run(url: str, key: str, audio: bytes, count: int, concurrency: int, timeout_s: float) -> None:
    latencies: list[float] = []
    task_ids: list[str] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": key}, timeout=60) as client:

        async def one(i: int) -> None:
            nonlocal errors
            async with sem:
                t0 = time.perf_counter()
                r = await client.post(
                    API, files={"audio_file": (f"clip{i}.wav", audio, "audio/wav")}, data={"sonify_midi": "false"}
                )
                latencies.append(time.perf_counter() - t0)
                if r.status_code == 200:
                    task_ids.append(r.json()["task_id"])
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        submitted = time.perf_counter() - started
        pending = set(task_ids)
        failed = 0
        while pending and time.perf_counter() - started < timeout_s:
            await asyncio.sleep(0.5)
            for task_id in list(pending):
                status = (await client.get(f"/api/public/v1/tasks/{task_id}")).json()["status"]
                if status in ("completed", "failed"):
                    pending.discard(task_id)
                    failed += status == "failed"
        elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    done = len(task_ids) - len(pending) - failed
    print(f"submissions: {count} ({concurrency} concurrent), rejected {errors}, all sent in {submitted:.2f} s")
    print(
        f"submission latency: p50 {np.percentile(lat, 50):.1f} ms   p99 {np.percentile(lat, 99):.1f} ms   "
        f"max {lat.max():.1f} ms"
    )
    print(
        f"completed {done} of {len(task_ids)} (failed {failed}, unfinished {len(pending)}) in {elapsed:.1f} s: "
        f"{done / elapsed * 60:.1f} tasks per minute"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--clip-s", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args()
    args.count = min(args.count, 1000)
    audio = clip_bytes(args.clip_s)
    print(f"clip: {args.clip_s:g} s ({len(audio) / 1e6:.1f} MB WAV), workers: {args.workers}")
    if args.url:
        asyncio.run(run(args.url, args.key, audio, args.count, args.concurrency, args.timeout_s))
        return
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc, key = start_service(Path(tmp), port, args.workers)
        try:
            asyncio.run(run(f"http://127.0.0.1:{port}", key, audio, args.count, args.concurrency, args.timeout_s))
        finally:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
