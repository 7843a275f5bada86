"""The client's pure logic with httpx's MockTransport: the error table, retries, names, parsing.
(The client against a real server: tests/test_client.py.)"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from midiscribe.client import ERROR_CODES, AsyncClient, Client, TaskInfo, TaskResult
from midiscribe.client._common import download_plan
from midiscribe.client._errors import error_for, retry_after_s, task_error
from midiscribe.errors import (
    AudioTooLongError,
    InputTooLargeError,
    InvalidRequestError,
    MidiscribeError,
    OptionsError,
    RateLimitError,
    ServerError,
    ServiceConnectionError,
    ServiceError,
    ServiceUnavailableError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotCompletedError,
)

ROOT = Path(__file__).resolve().parents[1]
TASK = "f5b563e5-e414-47ec-989b-255c74d90119"


def _envelope(status: int, code: str, message: str = "said the server", **headers: str) -> httpx.Response:
    body = {"success": False, "error": {"code": code, "message": message, "request_id": "rid-1"}}
    return httpx.Response(status, json=body, headers=headers)


def _readme_codes() -> list[tuple[int, str]]:
    """Every (status, code) of the README's error table, and the codes a failed task reports."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Errors", 1)[1].split("\n\n", 2)[1]
    rows = []
    for line in table.splitlines()[2:]:
        status, codes = line.split("|")[1:3]
        rows += [(int(status), code) for code in re.findall(r"`([a-z_]+)`", codes)]
    failures = readme.split("A task that fails says why", 1)[1].split("\n\n", 1)[0]
    rows += [(0, code) for code in re.findall(r"`([a-z_]+)`", failures) if code not in ("error", "status", "message")]
    return rows


def test_every_readme_code_has_its_class() -> None:
    codes = _readme_codes()
    assert len(codes) > 30
    missing = sorted({code for _, code in codes if code not in ERROR_CODES})
    assert not missing, f"codes in the README without a client class: {missing}"
    for status, code in codes:
        if status == 0:
            continue
        exc = error_for(_envelope(status, code))
        assert isinstance(exc, ERROR_CODES[code]) and isinstance(exc, MidiscribeError)
        assert (exc.status, exc.code, exc.request_id, str(exc)) == (status, code, "rid-1", "said the server")


def test_library_classes_are_the_remote_ones() -> None:
    assert isinstance(error_for(_envelope(413, "audio_too_long")), AudioTooLongError)
    too_large = error_for(_envelope(413, "input_too_large", "over the limit of 5 bytes"))
    assert isinstance(too_large, InputTooLargeError) and str(too_large) == "over the limit of 5 bytes"
    assert isinstance(error_for(_envelope(400, "invalid_parameters")), OptionsError | ValueError)


def test_unknown_codes_and_foreign_bodies_by_status() -> None:
    assert type(error_for(_envelope(400, "something_new"))) is InvalidRequestError
    assert type(error_for(_envelope(418, "teapot"))) is ServiceError
    proxy = error_for(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert type(proxy) is ServerError and proxy.status == 502 and "502" in str(proxy)
    other = error_for(httpx.Response(413, json={"detail": "too big"}))
    assert isinstance(other, InputTooLargeError) and str(other) == "too big"


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after_s(httpx.Response(429, headers={"retry-after": "7"})) == 7
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after_s(httpx.Response(503, headers={"retry-after": when})) or 0) <= 30
    assert retry_after_s(httpx.Response(503, headers={"retry-after": "soon"})) is None
    assert retry_after_s(httpx.Response(503)) is None


def _client(handler: Callable[[httpx.Request], httpx.Response], **kw: float) -> Client:
    return Client("http://svc.test/api/public/v1/", "KEY", transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]


def _status(progress: int = 100, status: str = "completed") -> httpx.Response:
    return httpx.Response(200, json={"task_id": TASK, "status": status, "progress": progress, "result": None})


def test_503_then_ok_waits_retry_after_and_sends_the_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            return _envelope(503, "unavailable", **{"retry-after": "0.2"})
        return _status()

    started = time.monotonic()
    with _client(handler) as c:
        assert c.base_url == "http://svc.test"
        info = c.status(TASK)
    assert info.status == "completed" and len(seen) == 3
    assert time.monotonic() - started >= 0.35
    assert all(r.headers["authorization"] == "KEY" and r.url.path == f"/api/public/v1/tasks/{TASK}" for r in seen)


def test_gives_up_after_max_retries_and_on_long_waits() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _envelope(429, "too_many_tasks", **{"retry-after": "0"})

    with _client(handler, max_retries=2) as c, pytest.raises(RateLimitError) as caught:
        c.status(TASK)
    assert calls == 3 and caught.value.retry_after_s == 0

    calls = 0

    def midnight(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _envelope(503, "unavailable", **{"retry-after": "3600"})

    with _client(midnight) as c, pytest.raises(ServiceUnavailableError) as unavailable:
        c.status(TASK)
    assert calls == 1 and unavailable.value.retry_after_s == 3600


def test_connection_errors_retried_then_typed() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        return _status()

    with _client(flaky) as c:
        assert c.status(TASK).status == "completed"
    assert calls == 2

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with _client(down, max_retries=1) as c, pytest.raises(ServiceConnectionError, match="timed out"):
        c.status(TASK)
    assert issubclass(ServiceConnectionError, ConnectionError)


def test_submit_retry_resends_the_file_with_the_same_idempotency_key(tmp_path: Path) -> None:
    audio = tmp_path / "a b.flac"
    audio.write_bytes(b"fLaC" + b"x" * 5000)
    seen: list[tuple[str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["idempotency-key"], request.read()))
        if len(seen) == 1:
            return _envelope(503, "unavailable", **{"retry-after": "0"})
        return httpx.Response(200, json={"success": True, "task_id": TASK, "status": "processing"})

    with _client(handler) as c:
        task = c.submit(audio, preset="piano", save_musicxml=True, midi_tempo=90.5)
    assert task.id == TASK and len(seen) == 2
    (key1, body1), (key2, body2) = seen
    assert key1 == key2 and len(body1) == len(body2) and b"fLaC" + b"x" * 5000 in body2  # the file, again
    assert b'filename="a b.flac"' in body1 and b"\r\n\r\ntrue\r\n" in body1 and b"90.5" in body1


def test_url_submit_is_json_and_unknown_options_are_refused() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return httpx.Response(200, json={"success": True, "task_id": TASK, "status": "processing"})

    with _client(handler) as c:
        c.submit("s3://bucket/a.wav", sonify_midi=False, extra={"future_field": 1})
        with pytest.raises(OptionsError, match="onset_treshold"):
            c.submit("https://example.com/a.wav", onset_treshold=0.5)
    assert bodies == [b'{"audio_path":"s3://bucket/a.wav","sonify_midi":false,"future_field":1}']


def test_wait_backs_off_reports_changes_and_times_out() -> None:
    answers = iter([("queued", 0), ("processing", 10), ("processing", 10), ("processing", 10), ("completed", 100)])

    def handler(request: httpx.Request) -> httpx.Response:
        status, progress = next(answers)
        return _status(progress, status)

    seen: list[tuple[str, int]] = []
    with _client(handler) as c:
        info = c.task(TASK).wait(
            timeout=10, progress=lambda i: seen.append((i.status, i.progress)), poll_interval_s=0.01
        )
    assert info.status == "completed"
    assert seen == [("queued", 0), ("processing", 10), ("completed", 100)]

    from midiscribe.errors import WaitTimeoutError

    with _client(lambda r: _status(5, "processing")) as c, pytest.raises(WaitTimeoutError) as caught:
        c.task(TASK).wait(timeout=0.2, poll_interval_s=0.05)
    assert caught.value.task_id == TASK and isinstance(caught.value, TimeoutError)


def test_failed_and_cancelled_tasks_raise_their_error() -> None:
    def info(status: str, code: str | None, http: int | None = None) -> TaskInfo:
        from midiscribe.client import TaskErrorInfo

        return TaskInfo(task_id=TASK, status=status, progress=40, error=TaskErrorInfo(http, code, "why"))  # type: ignore[arg-type]

    assert isinstance(task_error(info("failed", "audio_too_long", 413)), AudioTooLongError)
    died = task_error(info("failed", "worker_died", 500))
    assert type(died) is TaskFailedError and died.code == "worker_died" and died.task_id == TASK
    assert type(task_error(info("failed", "internal_error", 500))) is TaskFailedError
    assert type(task_error(info("failed", "brand_new_reason"))) is TaskFailedError
    assert isinstance(task_error(info("cancelled", "task_cancelled", 409)), TaskCancelledError)
    with pytest.raises(TaskNotCompletedError):
        download_plan(TaskInfo(TASK, "processing", 50), ".", name=None, include=None, overwrite=False)


def test_download_names_follow_local_transcribe(tmp_path: Path) -> None:
    base = "http://svc.test/files/results/"
    result = TaskResult(
        midi_url=f"{base}{TASK}.mid?expires=1&signature=x",
        sonify_url=f"{base}{TASK}.flac?expires=1",
        notes_url=f"https://bucket.s3.example/AudioToMidi/{TASK}.csv?X-Amz-Signature=y",
        model_outputs_url=f"{base}{TASK}.npz",
        score_urls=(f"{base}{TASK}.score-1.svg", f"{base}{TASK}.score-2.svg"),
    )
    info = TaskInfo(TASK, "completed", 100, input_name="My Song.mp3", result=result)
    plan = download_plan(info, tmp_path, name=None, include=None, overwrite=False)
    assert [p.name for _, p in plan] == [
        "My Song.mid",
        "My Song.flac",
        "My Song.csv",
        "My Song.score-1.svg",
        "My Song.score-2.svg",
    ]
    only = download_plan(info, tmp_path, name="x", include=("model_outputs",), overwrite=False)
    assert [p.name for _, p in only] == ["x.npz"]
    with pytest.raises(OptionsError, match="unknown file kind"):
        download_plan(info, tmp_path, name=None, include=("pdf",), overwrite=False)  # type: ignore[arg-type]


def test_downloads_do_not_send_the_api_key(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    result = {
        "midi_file_path": f"https://bucket.example/{TASK}.mid?sig=1",
        "sonify_file_path": "",
        "notes_file_path": "",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "bucket.example":
            return httpx.Response(200, content=b"MThd")
        return httpx.Response(200, json={"task_id": TASK, "status": "completed", "progress": 100, "result": result})

    with _client(handler) as c:
        paths = c.task(TASK).download(tmp_path)
    assert [p.read_bytes() for p in paths] == [b"MThd"]
    assert "authorization" in seen[0].headers and "authorization" not in seen[1].headers


def test_async_client_retries_and_lists_pages() -> None:
    pages = {
        0: [f"{i:08d}-0000-0000-0000-000000000000" for i in range(3)],
        3: ["00000002-0000-0000-0000-000000000000", "00000009-0000-0000-0000-000000000000"],
    }
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return _envelope(429, "rate_limited", **{"retry-after": "0"})
        offset = int(request.url.params["offset"])
        ids = pages.get(offset, [])
        tasks = [{"task_id": t, "status": "queued", "progress": 0} for t in ids]
        return httpx.Response(200, json={"success": True, "total": 5, "limit": 3, "offset": offset, "tasks": tasks})

    async def run() -> list[str]:
        async with AsyncClient("http://svc.test", "KEY", transport=httpx.MockTransport(handler)) as ac:
            return [t.id async for t in ac.list_tasks(page_size=3)]

    ids = asyncio.run(run())
    # a task submitted meanwhile shifted the second page: no task twice
    assert ids == [*pages[0], "00000009-0000-0000-0000-000000000000"]


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIDISCRIBE_URL", raising=False)
    with pytest.raises(OptionsError, match="MIDISCRIBE_URL"):
        Client()
    monkeypatch.setenv("MIDISCRIBE_URL", "https://midi.example.com/")
    monkeypatch.setenv("MIDISCRIBE_API_KEY", "from-env")
    with Client() as c:
        assert c.base_url == "https://midi.example.com" and c._key == "from-env"
    with pytest.raises(OptionsError, match="http"):
        Client("midi.example.com")
