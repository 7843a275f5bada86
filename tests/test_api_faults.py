"""Issue 11 against one real `midiscribe serve` without workers: a locked database answers 503 fast,
/readyz really writes, a 500 never poisons a kept-alive connection, Idempotency-Key, quotas,
a broken store, cancel of a queued task."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audiogen import encode, melody
from service_harness import Service

API = "/api/public/v1/audio_to_midi"
TASKS = "/api/public/v1/tasks"


@pytest.fixture(scope="module")
def tune(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("faults-media") / "tune.flac"
    encode(path, melody([(0.1, 0.4, 60)], 1.0, sr=22_050), sr=22_050, kind="flac")
    return path.read_bytes()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = Service(
        tmp_path_factory.mktemp("api-faults"),
        workers=0,
        env={"MIDISCRIBE_DATABASE_BUSY_TIMEOUT_S": "1", "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "1000"},
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def key(svc: Service) -> str:
    return svc.create_key("faults")[0]


def _db(svc: Service) -> sqlite3.Connection:
    return sqlite3.connect(svc.data_dir / "midiscribe.db", timeout=10, isolation_level=None)


def test_locked_database_is_a_fast_503(svc: Service, key: str, tune: bytes) -> None:
    lock = _db(svc)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        r = httpx.post(
            svc.url + API, headers={"Authorization": key}, files={"audio_file": ("t.flac", tune)}, timeout=30
        )
        assert time.monotonic() - started < 5
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable" and int(r.headers["retry-after"]) >= 1
        ready = httpx.get(svc.url + "/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error")
        assert int(ready.headers["retry-after"]) >= 1
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert httpx.get(svc.url + "/readyz").status_code == 200
    logged = svc.log().count("database unavailable")
    assert logged == 1, svc.log()


def test_a_500_does_not_poison_the_connection(svc: Service, key: str, tune: bytes) -> None:
    task_id = httpx.post(svc.url + API, headers={"Authorization": key}, files={"audio_file": ("t.flac", tune)}).json()[
        "task_id"
    ]
    db = _db(svc)
    db.execute("ALTER TABLE tasks RENAME TO tasks_away")  # a real fault: our bug, a 500
    try:
        with httpx.Client(base_url=svc.url, headers={"Authorization": key}) as client:
            for _ in range(5):
                r = client.get(f"{TASKS}/{task_id}")
                assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
                assert r.headers["connection"] == "close" and r.json()["error"]["request_id"]
                assert "tasks_away" not in r.text and "sqlite" not in r.text.lower()
                assert client.get("/healthz").status_code == 200  # the next request works
    finally:
        db.execute("ALTER TABLE tasks_away RENAME TO tasks")
        db.close()


def test_idempotency_key(svc: Service, key: str, tune: bytes) -> None:
    def send(idem: str, data: dict[str, str]) -> httpx.Response:
        return httpx.post(
            svc.url + API,
            headers={"Authorization": key, "Idempotency-Key": idem},
            files={"audio_file": ("t.flac", tune)},
            data=data,
        )

    first = send("order-1", {"sonify_midi": "false"})
    again = send("order-1", {"sonify_midi": "0"})  # the same request, spelled differently
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = send("order-1", {"sonify_midi": "true"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert send("order-2", {"sonify_midi": "false"}).json()["task_id"] != first.json()["task_id"]
    listed = httpx.get(svc.url + TASKS + "?limit=100", headers={"Authorization": key}).json()["tasks"]
    assert sum(t["task_id"] == first.json()["task_id"] for t in listed) == 1
    other_key = svc.create_key("idem-other")[0]  # keys are per API key
    r = httpx.post(
        svc.url + API,
        headers={"Authorization": other_key, "Idempotency-Key": "order-1"},
        files={"audio_file": ("t.flac", tune)},
    )
    assert r.status_code == 200 and r.json()["task_id"] != first.json()["task_id"]


def test_daily_quota(svc: Service, tune: bytes) -> None:
    limited = svc.create_key("quota")[0]
    svc.cli("keys", "quota", limited[:10], "1.5")
    assert "1.5" in svc.cli("keys", "list") or " 2 " in svc.cli("keys", "list")
    ok = httpx.post(svc.url + API, headers={"Authorization": limited}, files={"audio_file": ("t.flac", tune)})
    assert ok.status_code == 200, ok.text
    r = httpx.post(svc.url + API, headers={"Authorization": limited}, files={"audio_file": ("t.flac", tune)})
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 86400


def test_cancel_a_queued_task_deletes_its_files(svc: Service, key: str, tune: bytes) -> None:
    task_id = httpx.post(svc.url + API, headers={"Authorization": key}, files={"audio_file": ("t.flac", tune)}).json()[
        "task_id"
    ]
    link = httpx.get(f"{svc.url}{TASKS}/{task_id}", headers={"Authorization": key}).json()["input"]["file_path"]
    assert httpx.get(link).status_code == 200
    r = httpx.delete(f"{svc.url}{TASKS}/{task_id}", headers={"Authorization": key})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["status"] == "cancelled" and view["error"]["code"] == "task_cancelled" and view["files_deleted_at"]
    gone = httpx.get(link)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "file_expired"
    assert not list((svc.data_dir / "objects" / "uploads").glob(f"{task_id}*"))
    assert httpx.delete(f"{svc.url}{TASKS}/{task_id}", headers={"Authorization": key}).json()["status"] == "cancelled"


def test_broken_store_is_503_and_not_ready(svc: Service, key: str, tune: bytes) -> None:
    uploads = svc.data_dir / "objects" / "uploads"
    moved = uploads.with_name("uploads-away")
    uploads.rename(moved)
    uploads.write_text("not a folder")  # root ignores permissions: break the store the way a full or wrong mount does
    try:
        ready = httpx.get(svc.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["store"].startswith("error")
        r = httpx.post(svc.url + API, headers={"Authorization": key}, files={"audio_file": ("t.flac", tune)})
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable" and r.headers["retry-after"]
    finally:
        uploads.unlink()
        moved.rename(uploads)
    assert httpx.get(svc.url + "/readyz").status_code == 200


def test_working_files_stay_in_the_data_dir(svc: Service, tmp_path: Path) -> None:
    """No midiscribe-* folder in the system temp dir; a dead process's folder is swept at start."""
    work = svc.data_dir / "work"
    assert work.is_dir() and any(p.name.startswith("metrics-") for d in work.iterdir() for p in d.iterdir())
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    other = Service(tmp_path / "other", workers=0, env={"TMPDIR": str(tmp)})
    other.start()
    dead = other.data_dir / "work" / f"{_host()}-999999"
    (dead / "task-x").mkdir(parents=True)
    other.stop()
    other.start()
    try:
        assert not dead.exists()
    finally:
        other.stop(sig=15)
    assert not [p for p in tmp.iterdir() if p.name.startswith("midiscribe")], list(tmp.iterdir())
    shutil.rmtree(other.data_dir, ignore_errors=True)


def _host() -> str:
    import socket

    return "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:60] or "host"
