"""Tempo, meter, beats and key through a real `midiscribe serve`: the status response, the CSV's beat
columns, the re-tune endpoint's grid, the MIDI file's tempo map, and the documented webhook unchanged."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from audiogen import encode, melody
from service_harness import Receiver, Service, wait_until
from test_beats import song

pretty_midi = pytest.importorskip("pretty_midi")

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
BEATS = [0.5 + i * 0.6 for i in range(25)]  # 100 bpm, 4/4, six bars


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("svc"))
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def key(service: Service) -> str:
    return service.create_key("beats")[0]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def run(service: Service, key: str, audio: Path, receiver: Receiver, **fields: str) -> tuple[dict[str, Any], Any]:
    fields = {"sonify_midi": "false", "webhook_url": f"{receiver.url}/hook"} | fields
    r = httpx.post(
        service.url + API,
        headers={"Authorization": key},
        files={"audio_file": (audio.name, audio.read_bytes())},
        data=fields,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]

    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(
            f"{service.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": key}, timeout=10
        ).json()
        return body if body["status"] in ("completed", "failed") else None

    task: dict[str, Any] = wait_until(done, timeout=120, interval=0.2, what=f"task {task_id}")
    assert task["status"] == "completed", task
    (hook,) = wait_until(lambda: receiver.for_task(task_id), what="webhook")
    return task, hook.json()


def test_tempo_meter_beats_and_key_end_to_end(service: Service, key: str, receiver: Receiver, tmp_path: Path) -> None:
    audio = encode(tmp_path / "song.flac", melody(song(BEATS), BEATS[-1] + 1.0), sr=22_050, kind="flac")
    task, hook = run(service, key, audio, receiver, beat_columns="true")
    result = task["result"]
    assert result["tempo_bpm"] == pytest.approx(100, rel=0.02) and result["tempo_reason"] is None
    assert result["time_signature"] == "4/4" and result["key"] == "C major"
    assert result["beats"] >= len(BEATS)
    assert list(hook) == DOCUMENTED_WEBHOOK_KEYS  # the webhook body stays exactly as documented

    midi = pretty_midi.PrettyMIDI(io.BytesIO(httpx.get(result["midi_file_path"]).content))
    file_beats = midi.get_beats()
    assert all(np.min(np.abs(file_beats - b)) < 0.035 for b in BEATS[:-1])
    assert all(np.min(np.abs(midi.get_downbeats() - b)) < 0.035 for b in BEATS[:-1:4])

    rows = list(csv.DictReader(io.StringIO(httpx.get(result["notes_file_path"]).text)))
    assert rows and {"start_beat", "end_beat"} <= set(rows[0])
    # the bass starts each bar: on beat 1 of consecutive bars (bar.beat.thousandths; a note a few ms
    # early is at the very end of the bar before)
    bars = []
    for downbeat in BEATS[:-1:4]:
        (row,) = [r for r in rows if int(r["pitch_midi"]) < 45 and abs(float(r["start_s"]) - downbeat) < 0.03]
        bar, beat, thousandths = (int(x) for x in row["start_beat"].split("."))
        assert (beat == 1 and thousandths < 50) or thousandths > 950, row
        bars.append(bar if beat == 1 and thousandths < 50 else bar + 1)
    assert bars == list(range(bars[0], bars[0] + len(bars))), bars

    grid = httpx.post(
        f"{service.url}/api/public/v1/tasks/{task['task_id']}/notes", headers={"Authorization": key}, json={}
    ).json()["grid"]
    assert grid["time_signature"] == "4/4" and grid["tempo_bpm"] == result["tempo_bpm"]
    assert len(grid["beats_s"]) == result["beats"] and grid["beats_per_bar"] == 4
    assert grid["downbeats_s"] == grid["beats_s"][grid["first_downbeat"] :: 4]
    assert all(np.min(np.abs(np.array(grid["beats_s"]) - b)) < 0.035 for b in BEATS)


def test_no_beat_is_a_null_tempo_with_a_reason(service: Service, key: str, receiver: Receiver, tmp_path: Path) -> None:
    audio = encode(tmp_path / "quiet.flac", np.zeros(3 * 22_050, dtype=np.float32), sr=22_050, kind="flac")
    task, hook = run(service, key, audio, receiver, midi_tempo="90")
    result = task["result"]
    assert result["tempo_bpm"] is None and result["tempo_reason"]
    assert result["time_signature"] == "4/4" and result["key"] is None
    assert list(hook) == DOCUMENTED_WEBHOOK_KEYS
    midi = pretty_midi.PrettyMIDI(io.BytesIO(httpx.get(result["midi_file_path"]).content))
    assert midi.get_tempo_changes()[1].tolist() == pytest.approx([90.0])  # the asked tempo, constant
