"""midiscribe.client (sync and async), midiscribe.webhooks and `midiscribe remote transcribe`,
against a real `midiscribe serve` on 127.0.0.1 with a real webhook receiver and file server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mido
import pytest

from audiogen import encode, melody
from midiscribe import Note, Transcription
from midiscribe.client import AsyncClient, Client, Task
from midiscribe.errors import (
    AudioNotFoundError,
    AudioTooLongError,
    AuthenticationError,
    FileExpiredError,
    IdempotencyKeyReusedError,
    InputTooLargeError,
    InvalidRequestError,
    MidiscribeError,
    NotFoundError,
    OptionsError,
    OutputExistsError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServiceConnectionError,
    TaskNotCompletedError,
    TaskNotFoundError,
    UnsupportedAudioError,
)
from midiscribe.formats.notes_csv import read_notes_csv
from midiscribe.webhooks import verify
from service_harness import EXE, FileServer, Receiver, Service, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
PITCHES = {60, 64, 67, 72}
MAX_UPLOAD = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-media")
    tune = melody([(0.3, 0.5, 60), (0.9, 0.5, 64), (1.5, 0.5, 67), (2.1, 0.8, 72)], 3.0, sr=22_050)
    encode(root / "tune.flac", tune, sr=22_050, kind="flac")
    encode(root / "tune.mp3", tune, sr=22_050, kind="mp3")
    encode(root / "tune.wav", tune, sr=22_050, kind="wav")
    (root / "garbage.wav").write_bytes(b"RIFF....WAVEnot really" * 200)
    (root / "big.wav").write_bytes(os.urandom(MAX_UPLOAD + 100_000))  # refused while it streams
    (root / "huge.wav").write_bytes(os.urandom(6 * MAX_UPLOAD))  # refused by its Content-Length, at once
    busy = melody([(0.2 + 0.5 * i, 0.4, 60 + i % 12) for i in range(14)], 8.0, sr=22_050)
    encode(root / "mid.flac", busy, sr=22_050, kind="flac")
    encode(root / "long.flac", 0.01 * melody([(0.2, 0.4, 60)], 25.0, sr=8_000), sr=8_000, kind="flac")
    return root


@pytest.fixture(scope="module")
def files(media: Path) -> Iterator[FileServer]:
    server = FileServer(media)
    yield server
    server.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = {
        "MIDISCRIBE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "MIDISCRIBE_MAX_AUDIO_DURATION_S": "20",
        "MIDISCRIBE_RATE_LIMIT_PER_MINUTE": "60",
        "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "3",  # remote transcribe -j 3 fits; a 4th waits
    }
    svc = Service(tmp_path_factory.mktemp("client-svc"), env=env)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def key(service: Service) -> tuple[str, str]:
    return service.create_key("client-tests")


@pytest.fixture
def client(service: Service, key: tuple[str, str]) -> Iterator[Client]:
    with Client(service.url, key[0]) as c:
        yield c


@pytest.fixture(scope="module")
def done(service: Service, key: tuple[str, str], media: Path, receiver: Receiver) -> Iterator[tuple[Task, list[Any]]]:
    """An upload with every output and a webhook, waited for with a progress callback."""
    seen: list[Any] = []
    with Client(service.url, key[0]) as c:
        task = c.submit(
            media / "tune.flac", sonify_midi=True, save_note_events=True, save_musicxml=True, webhook_url=receiver.url
        )
        task.wait(timeout=60, progress=seen.append)
        yield task, seen


def test_upload_wait_download_and_parse(done: tuple[Task, list[Any]], tmp_path: Path) -> None:
    task, seen = done
    assert seen[-1].status == "completed" and seen[-1].progress == 100
    progress = [i.progress for i in seen]
    states = [(i.status, i.progress) for i in seen]
    assert progress == sorted(progress) and len(set(states)) == len(states)  # called on changes only
    assert task.info is not None and task.info.result is not None
    assert task.info.result.n_notes == 4 and task.info.result.duration_s == pytest.approx(3.0, abs=0.05)
    assert task.info.input_kind == "upload" and task.info.input_name == "tune.flac"

    written = task.download(tmp_path)
    assert [p.name for p in written] == ["tune.mid", "tune.wav", "tune.csv", "tune.musicxml", "tune.mxl"]
    midi = mido.MidiFile(tmp_path / "tune.mid")
    on = {m.note for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0}
    assert on == PITCHES
    assert (tmp_path / "tune.wav").read_bytes()[:4] == b"RIFF"
    assert b"<score-partwise" in (tmp_path / "tune.musicxml").read_bytes()
    assert not list(tmp_path.glob(".*.part"))
    with pytest.raises(OutputExistsError):
        task.download(tmp_path, include=("midi",))
    assert task.download(tmp_path, name="again", include=("midi", "model_outputs")) == [
        tmp_path / "again.mid",
        tmp_path / "again.npz",
    ]

    notes = task.notes()
    assert all(isinstance(n, Note) for n in notes)
    assert {n.pitch for n in notes} == PITCHES
    assert notes == read_notes_csv(tmp_path / "tune.csv")
    assert notes[0].start_s == pytest.approx(0.3, abs=0.05)


def test_retune_list_and_models(done: tuple[Task, list[Any]], client: Client, tmp_path: Path) -> None:
    task, _ = done
    again = client.task(task.id)
    tr = again.retune(onset_threshold=0.95, minimum_note_length=200)
    assert isinstance(tr, Transcription) and all(isinstance(n, Note) for n in tr.notes)
    assert tr.options.onset_threshold == 0.95 and tr.options.min_note_length_ms == 200
    assert len(tr.notes) <= 4 and tr.duration_s == pytest.approx(3.0, abs=0.05)
    midi = again.retune_file(tmp_path / "retuned.mid", onset_threshold=0.5)
    assert mido.MidiFile(midi).tracks
    with pytest.raises(OptionsError, match="unknown option onset"):
        again.retune(onset=0.5)

    listed = list(client.list_tasks(page_size=1, limit=3))
    assert task.id in [t.id for t in listed] and len({t.id for t in listed}) == len(listed)
    assert all(t.info is not None and t.info.task_id == t.id for t in listed)


def test_models(client: Client) -> None:
    probe = httpx.get(client.base_url + "/api/public/v1/models", timeout=10)
    if probe.status_code == 404:
        pytest.skip("GET /api/public/v1/models is not on this server yet (branch `models`, issue 10)")
    models = client.models()
    assert models and all(m.name for m in models)
    assert "general" in [m.name for m in models]


def test_webhook_received_and_verified(done: tuple[Task, list[Any]], receiver: Receiver, key: tuple[str, str]) -> None:
    task, _ = done
    (delivery,) = wait_until(lambda: receiver.for_task(task.id), timeout=15, what="the webhook")
    assert delivery.json()["success"] is True and delivery.json()["midi_file_path"]
    assert verify(key[1], delivery.headers, delivery.body)
    upper = {k.upper(): v for k, v in delivery.headers.items()}  # any mapping, any case
    assert verify(key[1], upper, delivery.body.decode())
    assert not verify(key[1], delivery.headers, delivery.body + b" ")
    assert not verify(key[1], {**delivery.headers, "webhook-signature": "v1,AAAA"}, delivery.body)
    assert not verify(key[1], delivery.headers, delivery.body, now=time.time() + 600)  # a replay, later
    assert not verify(key[1], {}, delivery.body)


def test_async_url_input_upload_wait_download(
    service: Service, key: tuple[str, str], files: FileServer, receiver: Receiver, media: Path, tmp_path: Path
) -> None:
    seen: list[int] = []

    async def progress(info: Any) -> None:
        await asyncio.sleep(0)
        seen.append(info.progress)

    async def run() -> tuple[Any, list[Path], list[Note], list[str]]:
        async with AsyncClient(service.url, key[0]) as ac:
            task = await ac.submit(f"{files.url}/tune.mp3", save_note_events=True, webhook_url=receiver.url)
            upload = await ac.submit(media / "tune.flac", filename='my "tune"\r\n.flac', sonify_midi=False)
            info = await task.wait(timeout=60, progress=progress)
            uploaded = await upload.wait(timeout=60)
            # refused before it is read, the connection closed: the answer still arrives
            with pytest.raises(InputTooLargeError) as too_large:
                await ac.submit(media / "huge.wav")
            assert (too_large.value.status, too_large.value.code) == (413, "input_too_large")
            assert uploaded.input_kind == "upload" and uploaded.result is not None
            assert uploaded.result.n_notes == 4 and "tune" in (uploaded.input_name or "")
            written = await task.download(tmp_path)
            notes = await task.notes()
            listed = [t.id async for t in ac.list_tasks(page_size=2, limit=4)]
            tr = await ac.task(task.id).retune(onset_threshold=0.9)
            assert isinstance(tr, Transcription)
            return info, written, notes, listed

    info, written, notes, listed = asyncio.run(run())
    assert info.status == "completed" and info.input_kind == "url" and seen[-1] == 100
    assert sorted(p.name for p in written) == ["tune.csv", "tune.mid", "tune.wav"]
    assert {n.pitch for n in notes} == PITCHES
    assert info.task_id in listed
    (delivery,) = wait_until(lambda: receiver.for_task(info.task_id), timeout=15, what="the webhook")
    assert verify(key[1], delivery.headers, delivery.body)


def test_submit_sources_and_idempotency(client: Client, media: Path) -> None:
    with (media / "tune.wav").open("rb") as f:
        a = client.submit(f, idempotency_key="same-upload", sonify_midi=False)
    data = (media / "tune.wav").read_bytes()
    b = client.submit(data, filename="tune.wav", idempotency_key="same-upload", sonify_midi=False)
    assert a.id == b.id  # the repeat answered the original task
    with pytest.raises(IdempotencyKeyReusedError) as caught:
        client.submit(media / "tune.wav", idempotency_key="same-upload", sonify_midi=True)
    assert caught.value.status == 422 and caught.value.code == "idempotency_key_reused"
    info = a.wait(timeout=60)
    assert info.result is not None and info.result.sonify_url is None and info.input_name == "tune.wav"


def _expect(exc_type: type[BaseException], status: int | None, code: str | None, fn: Any) -> MidiscribeError:
    with pytest.raises(exc_type) as caught:
        fn()
    exc = caught.value
    assert isinstance(exc, MidiscribeError)
    assert (exc.status, exc.code) == (status, code), str(exc)
    assert str(exc)
    return exc


def test_every_error_status_mapped(client: Client, service: Service, media: Path, files: FileServer) -> None:
    c = client
    _expect(OptionsError, 400, "invalid_parameters", lambda: c.submit(media / "tune.flac", onset_threshold=2.0))
    _expect(OptionsError, None, None, lambda: c.submit(media / "tune.flac", onset=0.5))  # refused before sending
    _expect(AudioNotFoundError, None, None, lambda: c.submit(media / "nope.flac"))
    _expect(InvalidRequestError, 400, "invalid_audio_path", lambda: c.submit("https://u:p@example.com/a.wav"))
    _expect(InvalidRequestError, 400, "forbidden_address", lambda: c.submit("http://10.1.2.3/a.wav"))
    _expect(InvalidRequestError, 400, "s3_not_configured", lambda: c.submit("s3://bucket/a.wav"))
    _expect(
        InvalidRequestError, 400, "invalid_webhook_url", lambda: c.submit(media / "tune.flac", webhook_url="ftp://x")
    )
    with Client(service.url, "not-a-key") as stranger:
        exc = _expect(AuthenticationError, 401, "unauthorized", lambda: stranger.status(str(uuid.uuid4())))
        assert exc.request_id
    _expect(TaskNotFoundError, 404, "task_not_found", lambda: c.status(str(uuid.uuid4())))
    _expect(AudioNotFoundError, 404, "input_not_found", lambda: c.submit(f"{files.url}/missing.wav"))
    _expect(NotFoundError, 404, "not_found", lambda: c.request("GET", "/api/public/v1/nothing-here"))
    _expect(InvalidRequestError, 405, "method_not_allowed", lambda: c.request("PUT", "/api/public/v1/tasks"))
    plain = {"content-type": "text/plain"}
    _expect(
        InvalidRequestError,
        415,
        "unsupported_media_type",
        lambda: c.request("POST", "/api/public/v1/audio_to_midi", headers=plain, body=lambda: {"content": b"{}"}),
    )
    exc = _expect(InputTooLargeError, 413, "input_too_large", lambda: c.submit(media / "big.wav"))
    assert str(MAX_UPLOAD) in str(exc)  # the server's own message
    _expect(InputTooLargeError, 413, "input_too_large", lambda: c.submit(media / "huge.wav"))
    _expect(AudioTooLongError, 413, "audio_too_long", lambda: c.submit(media / "long.flac"))
    _expect(UnsupportedAudioError, 422, "unsupported_audio", lambda: c.submit(media / "garbage.wav"))

    # a task that fails in its worker raises its own error from wait()
    failing = c.submit(f"{files.url}/garbage.wav")
    exc = _expect(UnsupportedAudioError, 422, "unsupported_audio", lambda: failing.wait(timeout=60))
    assert exc.task_id == failing.id

    # 403 (a tampered link), 409 and 410 (files deleted), on a task of our own
    task = c.submit(media / "tune.flac", sonify_midi=False)
    info = task.wait(timeout=60)
    assert info.result is not None
    link = info.result.midi_url
    _expect(PermissionDeniedError, 403, "invalid_link", lambda: c.fetch_bytes(link[:-4] + "0000"))
    _expect(UnsupportedAudioError, 422, "unsupported_audio", lambda: c.task(failing.id).download("."))
    cancelled = task.cancel()
    assert cancelled.files_deleted_at is not None and cancelled.result is None
    _expect(FileExpiredError, 410, "file_expired", lambda: c.fetch_bytes(link))
    _expect(TaskNotCompletedError, 409, "task_not_completed", lambda: task.retune())
    _expect(FileExpiredError, None, None, lambda: task.download("."))

    # no server at all
    with Client(f"http://127.0.0.1:{free_port()}", "k", max_retries=1) as nobody:
        _expect(ServiceConnectionError, None, None, lambda: nobody.status(str(uuid.uuid4())))


def test_429_retried_after_retry_after(service: Service, media: Path, caplog: pytest.LogCaptureFixture) -> None:
    burst_key, _ = service.create_key("burst")
    url = service.url + "/api/public/v1/audio_to_midi"
    raw = httpx.Client(headers={"authorization": burst_key}, timeout=10)

    def spend_the_bucket() -> None:  # the key's 60 a minute, on cheap refused requests
        for _ in range(200):
            answer = raw.post(url, json={})
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
                return
        raise AssertionError("no 429 after 200 requests")

    caplog.set_level(logging.INFO, logger="midiscribe.client")
    # The bucket refills at one a second: on a loaded machine the next request may come too late
    # to be refused, so each check gets three tries.
    with Client(service.url, burst_key, max_retries=0) as impatient:
        for _ in range(3):
            spend_the_bucket()
            try:
                impatient.submit(media / "tune.flac", sonify_midi=False, save_note_events=False)
            except RateLimitError as exc:
                assert (exc.status, exc.code) == (429, "rate_limited") and (exc.retry_after_s or 0) >= 1
                break
        else:
            pytest.fail("the client never saw the 429")
    with Client(service.url, burst_key) as patient:
        for _ in range(3):
            spend_the_bucket()
            caplog.clear()
            started = time.monotonic()
            task = patient.submit(media / "tune.flac", sonify_midi=False, save_note_events=False)
            if any("HTTP 429; retrying in" in r.getMessage() for r in caplog.records):
                assert time.monotonic() - started >= 0.9  # it waited out Retry-After
                break
        else:
            pytest.fail("the client never saw the 429")
        assert task.wait(timeout=60).status == "completed"
    raw.close()


def test_too_many_tasks_waited_out(service: Service, media: Path, caplog: pytest.LogCaptureFixture) -> None:
    busy_key, _ = service.create_key("busy")
    caplog.set_level(logging.INFO, logger="midiscribe.client")
    with Client(service.url, busy_key, max_retries=20) as c:  # as long as the three take
        first = [c.submit(media / "mid.flac", sonify_midi=False, save_note_events=False) for _ in range(3)]
        with Client(service.url, busy_key, max_retries=0) as impatient:
            exc = _expect(RateLimitError, 429, "too_many_tasks", lambda: impatient.submit(media / "tune.wav"))
        assert exc.retry_after_s is not None and exc.retry_after_s >= 1
        fourth = c.submit(media / "tune.wav", sonify_midi=False)  # waits until one of the three is done
        assert any("HTTP 429; retrying in" in r.getMessage() for r in caplog.records)
        states = {t.refresh().status for t in first}
        assert "completed" in states  # the fourth got in when one of the three was done
        for t in [*first, fourth]:  # the rest is not this test's business
            assert t.cancel().files_deleted_at is not None


def test_daily_quota_is_raised_not_waited(service: Service, media: Path) -> None:
    lines = service.cli("keys", "create", "--name", "quota", "--max-audio-seconds-per-day", "1").splitlines()
    quota_key = lines[0].split()[-1]
    started = time.monotonic()
    with Client(service.url, quota_key) as c:
        exc = _expect(QuotaExceededError, 429, "quota_exceeded", lambda: c.submit(media / "tune.flac"))
    assert isinstance(exc, RateLimitError) and exc.retry_after_s is not None and exc.retry_after_s > 60
    assert time.monotonic() - started < 5  # "retry at midnight" is not waited for


def test_remote_transcribe_three_files(service: Service, key: tuple[str, str], media: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    inputs = [str(media / n) for n in ("tune.flac", "tune.mp3", "tune.wav")]
    for n, name in enumerate(("a", "b", "c")):  # three distinct names, as three files would have
        Path(tmp_path / f"{name}{Path(inputs[n]).suffix}").symlink_to(inputs[n])
    names = [str(tmp_path / f"{n}{Path(i).suffix}") for n, i in zip("abc", inputs, strict=True)]
    env = {**os.environ, "MIDISCRIBE_API_KEY": key[0], "COLUMNS": "200"}
    cmd = [str(EXE), "remote", "transcribe", *names, "-o", str(out), "--server", service.url, "--notes-csv", "-j", "3"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "a.mid", "b.csv", "b.mid", "c.csv", "c.mid"]
    assert "midiscribe remote transcribe" in done.stdout
    for name in ("a.flac", "b.mp3", "c.wav"):
        assert re.search(rf"{re.escape(name)}\s.*3\.0 s\s.*4\s.*{name[0]}\.mid, {name[0]}\.csv", done.stdout)

    # the same outputs again without --overwrite, and a file that is not audio: exit 1, nothing uploaded twice
    again = subprocess.run(
        [*cmd[:3], names[0], str(media / "garbage.wav"), *cmd[-7:]], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1, again.stdout + again.stderr
    assert "exists; pass --overwrite" in again.stdout and "failed" in again.stdout

    bad = subprocess.run([*cmd, "--onset-threshold", "2"], env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "onset_threshold" in bad.stderr
    no_server = {k: v for k, v in env.items() if k != "MIDISCRIBE_URL"}
    nowhere = subprocess.run([*cmd[:4], "-o", str(out)], env=no_server, capture_output=True, text=True, timeout=30)
    assert nowhere.returncode == 2 and "MIDISCRIBE_URL" in nowhere.stderr


def test_readme_example_runs_verbatim(service: Service, key: tuple[str, str], media: Path, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python client", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README's Python client section has no python code block"
    (tmp_path / "song.mp3").write_bytes((media / "tune.mp3").read_bytes())
    env = {**os.environ, "MIDISCRIBE_URL": service.url, "MIDISCRIBE_API_KEY": key[0]}
    done = subprocess.run(
        [sys.executable, "-c", code.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "song.mid").exists()
    assert "completed 100%" in done.stdout


def test_client_import_is_light() -> None:
    heavy = ["onnxruntime", "fastapi", "starlette", "sqlalchemy", "numpy", "av", "soxr", "mido", "lxml", "pydantic"]
    heavy += ["midiscribe.service", "midiscribe.core.transcribe", "midiscribe.core.model"]
    code = (
        "import sys, json, midiscribe.client, midiscribe.webhooks, midiscribe.errors;"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == []


def _readme_block(start: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Checking webhooks", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    return next(b for b in blocks if b.startswith(start))


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_readme_webhook_receivers(
    framework: str, done: tuple[Task, list[Any]], receiver: Receiver, key: tuple[str, str]
) -> None:
    """The README's receivers, served for real, given the delivery the service signed (and a forgery)."""
    pytest.importorskip(framework)
    task, _ = done
    (delivery,) = wait_until(lambda: receiver.for_task(task.id), timeout=15, what="the webhook")
    namespace: dict[str, Any] = {"SECRET": key[1], "__name__": "readme_receiver"}
    exec(_readme_block(f"from {framework} import"), namespace)
    port = free_port()
    if framework == "fastapi":
        import threading

        import uvicorn

        server = uvicorn.Server(uvicorn.Config(namespace["app"], host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        stop = lambda: setattr(server, "should_exit", True)  # noqa: E731
    else:
        import threading

        from werkzeug.serving import make_server

        wsgi = make_server("127.0.0.1", port, namespace["app"])
        thread = threading.Thread(target=wsgi.serve_forever, daemon=True)
        stop = wsgi.shutdown
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        wait_until(lambda: _listening(port), timeout=10, what=f"the {framework} receiver")
        sent = {k: v for k, v in delivery.headers.items() if k.startswith("webhook-") or k == "content-type"}
        assert httpx.post(url, content=delivery.body, headers=sent, timeout=10).status_code == 200
        forged = delivery.body.replace(b'"success":true', b'"success":false')
        assert httpx.post(url, content=forged, headers=sent, timeout=10).status_code == 401
    finally:
        stop()
        thread.join(10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
