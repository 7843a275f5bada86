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
    # Two distributed nodes counting in Redis, two without a broker counting in the database.
    on_redis = [Service(tmp_path / f"redis{i}", env=redis_env, workers=0) for i in range(2)]
    on_db = [Service(tmp_path / f"db{i}", env=env, workers=0) for i in range(2)]
    run_cli(on_redis[0]._env(), "db", "upgrade")
    key, _ = on_redis[0].create_key("limited")
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # start together: the test's slowest part
            list(pool.map(Service.start, [*on_redis, *on_db]))
        _check(_burst(on_redis, key, audio, LIMIT + 4))
        counters = [k.decode() for k in redis_db.client().scan_iter(f"{redis_db.prefix}.ratelimit*")]
        assert counters, "the counters live in Redis"
        _check(_burst(on_db, key, audio, LIMIT + 4))
    finally:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(Service.stop, [*on_redis, *on_db]))
    engine = create_engine(pg)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM rate_buckets").scalar() == 1  # the key's bucket
    engine.dispose()


def test_bucket_in_the_database(tmp_path: Path) -> None:
    """The database limiter: 5 at once, then one every 12 s; Retry-After says when."""
    engine = make_engine(f"sqlite:///{tmp_path / 'rl.db'}")
    init_db(engine)
    t0 = 1_800_000_000.0
    assert [ratelimits.hit(engine, "k", 5, now=t0 + i / 100) for i in range(5)] == [0.0] * 5
    assert ratelimits.hit(engine, "k", 5, now=t0 + 0.1) == pytest.approx(11.9, abs=1e-6)
    assert ratelimits.hit(engine, "other", 5, now=t0 + 0.1) == 0.0  # buckets are separate
    assert ratelimits.hit(engine, "k", 5, now=t0 + 12.0) == 0.0  # one more after an interval
    assert ratelimits.hit(engine, "k", 5, now=t0 + 12.1) > 0
    assert [ratelimits.hit(engine, "k", 5, now=t0 + 200 + i / 100) for i in range(5)] == [0.0] * 5  # full again
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
