"""Issue 12, defect 8: a key's rate limit holds across API nodes.

Two real `midiscribe serve` API nodes share one key: first as distributed nodes whose counters live
in the broker's Redis (the machine's server, a scratch database number and key prefix), then as two
nodes without a broker whose counters live in the shared PostgreSQL database (a scratch database on
the machine's server). Requests come at both nodes at once; together they get exactly the limit.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from audiogen import encode, melody
from cluster_harness import ScratchRedis, ServiceDown, run_cli, scratch_postgres, scratch_redis
from midiscribe.service.records import ratelimits
from midiscribe.service.records.db import init_db, make_engine
from service_harness import Service, free_port

API = "/api/public/v1/audio_to_midi"
LIMIT = 6


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


def _burst(nodes: list[Service], key: str, audio: bytes, n: int) -> list[httpx.Response]:
    """``n`` submissions at once, spread over the nodes."""

    def one(i: int) -> httpx.Response:
        files = {"audio_file": ("t.flac", audio)}
        return httpx.post(nodes[i % len(nodes)].url + API, headers={"Authorization": key}, files=files, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _check(answers: list[httpx.Response]) -> None:
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * LIMIT + [429] * (len(answers) - LIMIT), [r.text for r in answers]
    for r in answers:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(r.headers["retry-after"]) <= 60


def test_limit_holds_across_two_api_nodes(tmp_path: Path, pg: str, redis_db: ScratchRedis) -> None:
    audio = encode(tmp_path / "t.flac", melody([(0.1, 0.4, 60)], 1.0, sr=22_050), sr=22_050, kind="flac").read_bytes()
    env = {
        "MIDISCRIBE_DATABASE_URL": pg,
        "MIDISCRIBE_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "1000",
        "MIDISCRIBE_SIGNING_SECRET": "rate-limit-test-signing-secret-0123456789",
    }
    redis_env = env | {"MIDISCRIBE_BROKER_URL": redis_db.url, "MIDISCRIBE_QUEUE_PREFIX": redis_db.prefix}
    nodes = [Service(tmp_path / f"api{i}", env=redis_env, workers=0) for i in range(2)]
    run_cli(nodes[0]._env(), "db", "upgrade")
    key, _ = nodes[0].create_key("limited")
    try:
        for node in nodes:
            node.start()
        _check(_burst(nodes, key, audio, LIMIT + 4))
        counters = [k.decode() for k in redis_db.client().scan_iter(f"{redis_db.prefix}.ratelimit*")]
        assert counters, "the counters live in Redis"
    finally:
        for node in nodes:
            node.stop()

    # No broker: the same two nodes keep their counters in the shared database.
    nodes = [Service(tmp_path / f"db{i}", env=env, workers=0) for i in range(2)]
    try:
        for node in nodes:
            node.start()
        _check(_burst(nodes, key, audio, LIMIT + 4))
    finally:
        for node in nodes:
            node.stop()
    engine = create_engine(pg)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT sum(count) FROM rate_counters").scalar() == LIMIT
    engine.dispose()


def test_sliding_window_counter(tmp_path: Path) -> None:
    """The database limiter's estimate: last minute's count weighted by the part still in the window."""
    engine = make_engine(f"sqlite:///{tmp_path / 'rl.db'}")
    init_db(engine)
    t0 = 1_800_000_000.0  # a whole minute
    assert [ratelimits.hit(engine, "k", 5, now=t0 + i) for i in range(5)] == [0.0] * 5
    wait = ratelimits.hit(engine, "k", 5, now=t0 + 10)
    assert 50 < wait <= 60 + 12  # this minute is full; next minute 5 weigh 5 * (1 - elapsed)
    assert ratelimits.hit(engine, "other", 5, now=t0 + 10) == 0.0  # buckets are separate
    # Half-way through the next minute the 5 weigh 2.5: two more fit (3.5, 4.5), the third does not.
    half = t0 + 90
    assert [ratelimits.hit(engine, "k", 5, now=half + i / 10) for i in range(2)] == [0.0, 0.0]
    assert ratelimits.hit(engine, "k", 5, now=half + 0.3) > 0
    assert ratelimits.hit(engine, "k", 5, now=t0 + 180) == 0.0  # two minutes later: all forgotten
    engine.dispose()


def test_redis_down_lets_requests_through_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    """A Redis that cannot be reached (nothing listens on the port) is no reason to refuse work."""
    from midiscribe.service.api.ratelimit import build_limiter
    from midiscribe.service.settings import Settings

    settings = Settings(broker_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_per_minute=1)
    limiter = build_limiter(settings, make_engine("sqlite://"))
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="midiscribe.api"):
        assert [limiter.allow("k") for _ in range(5)] == [0.0] * 5
    assert time.monotonic() - started < 3
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["rate limiter: Redis failing"]
