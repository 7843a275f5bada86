"""The HTTP service through a real `midiscribe serve` on 127.0.0.1, a real webhook receiver and a
real file server, as a client would use it."""

from __future__ import annotations

import csv
import io
import signal
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mido
import numpy as np
import pytest

from audiogen import encode, melody
from midiscribe.service.outside.webhooks import verify
from service_harness import FileServer, Receiver, Service, wait_until

API = "/api/public/v1/audio_to_midi"
WEBHOOK_KEYS = [
    "success",
    "conversion_type",
    "task_id",
    "conversion_id",
    "midi_file_path",
    "sonify_file_path",
    "notes_file_path",
    "message",
]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    tune = melody([(0.3, 0.5, 60), (0.9, 0.5, 64), (1.5, 0.5, 67), (2.1, 0.8, 72)], 3.0, sr=44_100)
    encode(root / "tune.mp3", tune, kind="mp3")
    encode(root / "tune.flac", tune, kind="flac")
    (root / "garbage.wav").write_bytes(b"RIFF....WAVEnot really" * 200)
    long_events = [(0.2 + 0.5 * i, 0.4, 55 + (i % 20)) for i in range(480)]
    encode(root / "long.flac", melody(long_events, 240.0, sr=22_050), sr=22_050, kind="flac")
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
    svc = Service(tmp_path_factory.mktemp("svc"), env={"MIDISCRIBE_MAX_UPLOAD_BYTES": str(3 * 1024 * 1024)})
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def key(service: Service) -> tuple[str, str]:
    return service.create_key("tests")


def submit(service: Service, key: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        service.url + API, headers={"Authorization": key, "accept": "application/json"}, timeout=30, **kwargs
    )


def status(service: Service, key: str, task_id: str) -> dict[str, Any]:
    r = httpx.get(
        f"{service.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def finished(service: Service, key: str, task_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        s = status(service, key, task_id)
        return s if s["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_until(done, timeout=timeout, interval=0.2, what=f"task {task_id}")
    return result


def test_json_url_submission_end_to_end(
    service: Service, key: tuple[str, str], files: FileServer, receiver: Receiver
) -> None:
    api_key, secret = key
    r = submit(
        service,
        api_key,
        json={
            "audio_path": f"{files.url}/tune.mp3",
            "sonify_midi": True,
            "save_note_events": True,
            "webhook_url": f"{receiver.url}/hook",
            "unknown_field": "ignored",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {
        "success": True,
        "task_id": body["task_id"],
        "status": "processing",
        "message": "MIDI conversion task queued successfully",
    }
    task = finished(service, api_key, body["task_id"])
    assert task["status"] == "completed" and task["progress"] == 100
    assert task["options"]["sonify_midi"] is True and task["input"]["audio_path"].endswith("tune.mp3")

    (hook,) = wait_until(lambda: receiver.for_task(body["task_id"]), what="webhook")
    assert verify(secret, hook.headers, hook.body)
    payload = hook.json()
    assert list(payload) == WEBHOOK_KEYS
    assert payload["success"] is True and payload["conversion_type"] == "Audio to MIDI"
    assert payload["message"] == "Audio to Midi Completed" and payload["conversion_id"] == task["conversion_id"]

    # The webhook's links work without the API key.
    midi = mido.MidiFile(file=io.BytesIO(httpx.get(payload["midi_file_path"]).content))
    pitches = {m.note for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0}
    assert {60, 64, 67, 72} <= pitches
    with wave.open(io.BytesIO(httpx.get(payload["sonify_file_path"]).content)) as w:
        assert w.getnframes() / w.getframerate() > 2.5
    rows = list(csv.DictReader(io.StringIO(httpx.get(payload["notes_file_path"]).text)))
    assert {int(r["pitch_midi"]) for r in rows} >= {60, 64, 67, 72}
    task = wait_until(
        lambda: (t := status(service, api_key, body["task_id"]))["webhook"]["state"] == "delivered" and t,
        what="delivery recorded",
    )
    assert len(task["webhook"]["attempts"]) == 1 and task["webhook"]["attempts"][0]["status_code"] == 200


def test_upload_submission_without_extras(
    service: Service, key: tuple[str, str], media: Path, receiver: Receiver
) -> None:
    api_key, secret = key
    with (media / "tune.flac").open("rb") as fh:
        r = submit(
            service,
            api_key,
            files={"audio_file": ("my tune.flac", fh, "audio/flac")},
            data={
                "sonify_midi": "false",
                "save_note_events": "false",
                "webhook_url": f"{receiver.url}/up",
                "midi_program": "40",
            },
        )
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    task = finished(service, api_key, task_id)
    assert task["status"] == "completed", task
    assert task["result"]["sonify_file_path"] == "" and task["result"]["notes_file_path"] == ""
    (hook,) = wait_until(lambda: receiver.for_task(task_id), what="webhook")
    assert verify(secret, hook.headers, hook.body)
    payload = hook.json()
    assert payload["sonify_file_path"] == "" and payload["notes_file_path"] == ""
    midi = mido.MidiFile(file=io.BytesIO(httpx.get(payload["midi_file_path"]).content))
    assert [m.program for t in midi.tracks for m in t if m.type == "program_change"] == [40]


def test_tampered_or_expired_link_is_refused(service: Service, key: tuple[str, str], media: Path) -> None:
    with (media / "tune.flac").open("rb") as fh:
        task_id = submit(service, key[0], files={"audio_file": ("t.flac", fh)}).json()["task_id"]
    url = finished(service, key[0], task_id)["result"]["midi_file_path"]
    assert httpx.get(url).status_code == 200
    bad = httpx.get(url.replace("signature=", "signature=0"))
    assert bad.status_code == 403 and bad.json()["error"]["code"] == "invalid_link"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"json": {}}, "invalid_parameters"),
        ({"json": {"sonify_midi": True}}, "invalid_parameters"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "invalid_parameters"),
        ({"json": {"audio_path": "http://x/a.wav", "onset_threshold": 2}}, "invalid_parameters"),
        ({"json": {"audio_path": "s3://bucket/a.wav"}}, "s3_not_configured"),
        ({"json": {"audio_path": "ftp://example.com/a.wav"}}, "invalid_audio_path"),
        ({"json": {"audio_path": "http://10.0.0.1/a.wav"}}, "forbidden_address"),
        ({"json": {"audio_path": "http://169.254.169.254/latest/meta-data"}}, "forbidden_address"),
        (
            {"json": {"audio_path": "http://127.0.0.1:1/a.wav", "webhook_url": "http://192.168.1.1/hook"}},
            "invalid_webhook_url",
        ),
    ],
)
def test_bad_requests_are_400(service: Service, key: tuple[str, str], kwargs: dict[str, Any], code: str) -> None:
    headers = {"Authorization": key[0], **kwargs.pop("headers", {})}
    r = httpx.post(service.url + API, headers=headers, timeout=30, **kwargs)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == code and body["error"]["message"]


def test_missing_and_wrong_key_are_401(service: Service) -> None:
    for headers in ({}, {"Authorization": "ms_wrong"}, {"Authorization": "Bearer"}):
        r = httpx.post(service.url + API, headers=headers, json={"audio_path": "https://example.com/a.wav"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_url_not_found_is_404(service: Service, key: tuple[str, str], files: FileServer) -> None:
    r = submit(service, key[0], json={"audio_path": f"{files.url}/missing.wav"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "input_not_found"


def test_upload_over_limit_is_413(service: Service, key: tuple[str, str]) -> None:
    big = np.random.default_rng(0).integers(0, 255, 4 * 1024 * 1024, dtype=np.uint8).tobytes()
    r = submit(service, key[0], files={"audio_file": ("big.wav", big)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "input_too_large"


def test_undecodable_upload_is_422(service: Service, key: tuple[str, str], media: Path) -> None:
    r = submit(service, key[0], files={"audio_file": ("garbage.wav", (media / "garbage.wav").read_bytes())})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unsupported_audio"


def test_undecodable_remote_input_fails_the_task(
    service: Service, key: tuple[str, str], files: FileServer, receiver: Receiver
) -> None:
    r = submit(service, key[0], json={"audio_path": f"{files.url}/garbage.wav", "webhook_url": f"{receiver.url}/bad"})
    assert r.status_code == 200
    task_id = r.json()["task_id"]
    task = finished(service, key[0], task_id)
    assert task["status"] == "failed" and task["error"]["status"] == 422
    assert task["error"]["code"] == "unsupported_audio" and task["error"]["message"]
    (hook,) = wait_until(lambda: receiver.for_task(task_id), what="failure webhook")
    payload = hook.json()
    assert payload["success"] is False and payload["error"]["code"] == "unsupported_audio"


def test_other_keys_cannot_see_a_task(service: Service, key: tuple[str, str], media: Path) -> None:
    other, _ = service.create_key("other")
    with (media / "tune.flac").open("rb") as fh:
        task_id = submit(service, key[0], files={"audio_file": ("t.flac", fh)}).json()["task_id"]
    r = httpx.get(f"{service.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": other})
    assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found"
    listing = httpx.get(f"{service.url}/api/public/v1/tasks", headers={"Authorization": other}).json()
    assert listing["total"] == 0
    mine = httpx.get(f"{service.url}/api/public/v1/tasks?limit=2", headers={"Authorization": key[0]}).json()
    assert mine["total"] >= 1 and len(mine["tasks"]) <= 2


def test_webhook_retried_with_same_id(service: Service, key: tuple[str, str], media: Path, receiver: Receiver) -> None:
    receiver.fail_first["/flaky"] = 2
    with (media / "tune.flac").open("rb") as fh:
        r = submit(service, key[0], files={"audio_file": ("t.flac", fh)}, data={"webhook_url": f"{receiver.url}/flaky"})
    task_id = r.json()["task_id"]
    hooks = wait_until(lambda: (h := receiver.for_task(task_id)) and len(h) >= 3 and h, timeout=60, what="3 attempts")
    assert len({h.headers["webhook-id"] for h in hooks}) == 1
    assert all(verify(key[1], h.headers, h.body) for h in hooks)
    task = wait_until(
        lambda: (t := status(service, key[0], task_id))["webhook"]["state"] == "delivered" and t, what="delivered"
    )
    attempts = task["webhook"]["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    time.sleep(1.5)
    assert len(receiver.for_task(task_id)) == 3


def test_openapi_and_health(service: Service) -> None:
    doc = httpx.get(service.url + "/openapi.json").json()
    body = doc["paths"][API]["post"]["requestBody"]["content"]
    assert body["application/json"]["examples"]["s3"]["value"]["audio_path"] == "s3://your-bucket/input_audio.wav"
    assert "multipart/form-data" in body
    hook = doc["webhooks"]["audio_to_midi_result"]["post"]["requestBody"]["content"]["application/json"]
    assert hook["schema"]["examples"][0]["message"] == "Audio to Midi Completed"
    assert set(doc["components"]["schemas"]["WebhookPayload"]["properties"]) >= set(WEBHOOK_KEYS)
    assert httpx.get(service.url + "/docs").status_code == 200
    assert httpx.get(service.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(service.url + "/readyz").json()
    assert ready["checks"] == {"database": "ok", "store": "ok", "workers": "ok"}


def test_limits_are_429(tmp_path: Path, media: Path) -> None:
    svc = Service(
        tmp_path / "limited",
        workers=0,
        env={"MIDISCRIBE_RATE_LIMIT_PER_MINUTE": "4", "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "2"},
    )
    api_key, _ = svc.create_key()
    svc.start()
    try:
        audio = (media / "tune.flac").read_bytes()
        answers = [submit(svc, api_key, files={"audio_file": ("t.flac", audio)}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]  # no workers: the third is over the limit
        assert answers[2].json()["error"]["code"] == "too_many_tasks" and int(answers[2].headers["retry-after"]) >= 1
        r = submit(svc, api_key, files={"audio_file": ("t.flac", audio)})
        r = submit(svc, api_key, files={"audio_file": ("t.flac", audio)})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited" and "retry-after" in r.headers
    finally:
        svc.stop()


def test_worker_killed_mid_task_and_task_still_completes(service: Service, key: tuple[str, str], media: Path) -> None:
    with (media / "long.flac").open("rb") as fh:
        task_id = submit(service, key[0], files={"audio_file": ("long.flac", fh)}).json()["task_id"]
    wait_until(
        lambda: status(service, key[0], task_id)["progress"] >= 20, timeout=60, interval=0.05, what="task under way"
    )
    (pid,) = service.worker_pids()
    import os

    os.kill(pid, signal.SIGKILL)
    task = finished(service, key[0], task_id, timeout=180)
    assert task["status"] == "completed", task
    assert pid not in service.worker_pids()
    assert task["result"]["n_notes"] > 400


def test_restart_with_queued_tasks_loses_none(tmp_path: Path, media: Path) -> None:
    svc = Service(tmp_path / "restart")
    api_key, _ = svc.create_key()
    svc.start()
    audio = (media / "long.flac").read_bytes()
    ids = [submit(svc, api_key, files={"audio_file": ("long.flac", audio)}).json()["task_id"] for _ in range(3)]
    wait_until(lambda: status(svc, api_key, ids[0])["status"] == "processing", what="first task running")
    assert svc.stop() == 0  # Ctrl-C: the running task goes back to the queue
    svc.port = svc.port  # same port, same data
    svc.start()
    try:
        for task_id in ids:
            assert finished(svc, api_key, task_id, timeout=240)["status"] == "completed"
    finally:
        svc.stop()
