"""Presets, quantization, MusicXML and score pages end to end: the CLI as a user runs it, and the API
through a real `midiscribe serve`, a real webhook receiver and the re-tune endpoint."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mido
import pytest

from audiogen import encode, melody
from service_harness import Receiver, Service, wait_until

EXE = Path(sys.executable).with_name("midiscribe")
API = "/api/public/v1/audio_to_midi"
DOCUMENTED_WEBHOOK_KEYS = [
    "success",
    "conversion_type",
    "task_id",
    "conversion_id",
    "midi_file_path",
    "sonify_file_path",
    "notes_file_path",
    "message",
]
# 120 bpm (the constant grid until a beat is found): quarter notes played 20-30 ms off the beat
EVENTS = [(0.52, 0.45, 60), (1.03, 0.45, 64), (1.48, 0.45, 67), (2.02, 0.9, 72), (2.98, 0.45, 48)]


@pytest.fixture(scope="module")
def tune(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode(
        tmp_path_factory.mktemp("in") / "my song.flac", melody(EVENTS, 4.0, sr=22_050), sr=22_050, kind="flac"
    )


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "transcribe", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_cli_flags(tmp_path: Path, tune: Path) -> None:
    out = cli(
        tune,
        "-o",
        tmp_path,
        "--preset",
        "piano",
        "--tempo",
        "100",
        "--quantize",
        "1/8",
        "--quantize-ends",
        "--musicxml",
        "--render-score",
        "svg",
    )
    assert out.returncode == 0, out.stderr + out.stdout
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["my song.mid", "my song.musicxml", "my song.mxl", "my song.score-1.svg"], names
    midi = mido.MidiFile(tmp_path / "my song.mid")
    assert midi.tracks[1][1].program == 0  # the piano preset's program
    ticks, starts = 0, []
    for m in midi.tracks[1]:
        ticks += m.time
        if m.type == "note_on" and m.velocity:
            starts.append(ticks)
    assert starts and all(t % 240 == 0 for t in starts), starts  # on eighths of the file's 100 bpm grid
    xml = (tmp_path / "my song.musicxml").read_text()
    assert "<work-title>my song</work-title>" in xml and "<metronome>" in xml
    assert b"<svg" in (tmp_path / "my song.score-1.svg").read_bytes()[:400]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--quantize", "1/12"), "off, 1/4, 1/8, 1/16, 1/32, 1/8t, 1/16t"),
        (("--quantize", "1/8", "--quantize-strength", "120"), "quantize_strength"),
        (("--preset", "banjo"), "general"),
        (("--render-score", "gif"), "svg"),
    ],
)
def test_cli_bad_values_exit_2(tmp_path: Path, tune: Path, args: tuple[str, ...], message: str) -> None:
    out = cli(tune, "-o", tmp_path, *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("svc"))
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def key(service: Service) -> str:
    return service.create_key("notation")[0]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def post(service: Service, key: str, path: str = API, **kwargs: Any) -> httpx.Response:
    return httpx.post(service.url + path, headers={"Authorization": key}, timeout=30, **kwargs)


def finished(service: Service, key: str, task_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = httpx.get(f"{service.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": key}, timeout=10)
        body: dict[str, Any] = r.json()
        return body if body["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_until(done, timeout=120, interval=0.2, what=f"task {task_id}")
    return result


def upload(service: Service, key: str, tune: Path, receiver: Receiver, **fields: str) -> tuple[dict[str, Any], Any]:
    fields = {"sonify_midi": "false", "save_note_events": "false", "webhook_url": f"{receiver.url}/hook"} | fields
    r = post(service, key, files={"audio_file": (tune.name, tune.read_bytes())}, data=fields)
    assert r.status_code == 200, r.text
    task = finished(service, key, r.json()["task_id"])
    assert task["status"] == "completed", task
    (hook,) = wait_until(lambda: receiver.for_task(task["task_id"]), what="webhook")
    return task, hook.json()


def test_api_musicxml_score_quantize_and_preset(service: Service, key: str, tune: Path, receiver: Receiver) -> None:
    task, hook = upload(
        service, key, tune, receiver, preset="guitar", quantize="1/16", save_musicxml="true", render_score="svg"
    )
    assert task["options"]["preset"] == "guitar" and task["options"]["midi_options"]["program"] == 25
    assert task["options"]["quantize"] == {"grid": "1/16", "strength": 100.0, "ends": False}
    result = task["result"]
    assert list(hook) == [
        *DOCUMENTED_WEBHOOK_KEYS[:7],
        "musicxml_file_path",
        "mxl_file_path",
        "score_file_paths",
        "message",
    ]
    for links in (result, hook):
        xml = httpx.get(links["musicxml_file_path"])
        assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/vnd.recordare.musicxml")
        assert b"<work-title>my_song</work-title>" in xml.content
        with zipfile.ZipFile(io.BytesIO(httpx.get(links["mxl_file_path"]).content)) as z:
            assert "score.musicxml" in z.namelist()
        (page,) = links["score_file_paths"]
        svg = httpx.get(page)
        assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content[:400]


def test_api_plain_request_keeps_the_documented_webhook(
    service: Service, key: str, tune: Path, receiver: Receiver
) -> None:
    task, hook = upload(service, key, tune, receiver)
    assert list(hook) == DOCUMENTED_WEBHOOK_KEYS
    assert "musicxml_file_path" not in task["result"] and "score_file_paths" not in task["result"]
    assert task["options"]["preset"] == "general" and task["options"]["note_options"]["onset_threshold"] == 0.6

    # the re-tune endpoint takes a preset and the quantize fields (no model run)
    path = f"/api/public/v1/tasks/{task['task_id']}/notes"
    loose = post(service, key, path, json={}).json()
    snapped = post(service, key, path, json={"quantize": "1/4", "preset": "basic-pitch"}).json()
    assert snapped["options"]["onset_threshold"] == 0.5 and snapped["quantize"]["quantize"] == "1/4"
    assert any(abs(n[0] * 2 - round(n[0] * 2)) > 0.01 for n in loose["notes"])
    assert all(abs(n[0] * 2 - round(n[0] * 2)) < 0.002 for n in snapped["notes"])  # on quarters at 120 bpm
    bad = post(service, key, path, json={"quantize": "1/3"})
    assert bad.status_code == 400 and "1/16t" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        ({"quantize": "1/12"}, "off, 1/4, 1/8, 1/16, 1/32, 1/8t, 1/16t"),
        ({"quantize": "1/8", "quantize_strength": 150}, "quantize_strength"),
        ({"preset": "banjo"}, "general, piano, guitar, bass, voice, strings, winds, basic-pitch"),
        ({"render_score": "gif"}, "svg, pdf, png"),
        ({"save_musicxml": "yes please"}, "save_musicxml"),
    ],
)
def test_api_bad_values_are_400(service: Service, key: str, fields: dict[str, Any], valid: str) -> None:
    r = post(service, key, json={"audio_path": "https://example.com/a.mp3", **fields})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_parameters" and valid in error["message"], error
