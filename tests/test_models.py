"""The model registry (issue 10): names, typed errors, the mono model end to end, routing by model.

The mono model runs for real (PESTO on torch's CPU build, from the ``mono`` extra that ``make test``
installs) on a generated melody with a glide, through the CLI and through the HTTP service.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from audiogen import encode
from midiscribe.core import registry
from midiscribe.core.registry import MODELS, ModelSpec, get_model
from midiscribe.errors import ModelNotInstalledError, UnknownModelError
from service_harness import Service, wait_until

EXE = Path(sys.executable).with_name("midiscribe")
SR = 22_050
MONO = MODELS["mono"].installed()
needs_mono = pytest.mark.skipif(not MONO, reason=f"the mono extra is not installed: {MODELS['mono'].install_hint}")

# (start_s, end_s, MIDI pitch at the start, at the end): 64 -> 66 is a glide within one note
MELODY = [(0.30, 0.80, 60, 60), (0.85, 1.35, 64, 64), (1.35, 1.95, 64, 66), (1.95, 2.50, 66, 66), (2.70, 3.20, 69, 69)]
TOTAL_S = 3.6


def glide_melody() -> npt.NDArray[np.float32]:
    """Harmonic tones with a continuous phase; the third span slides up a whole tone (no new attack).

    The glide and the note it reaches are one played note: 1.35 s to 2.50 s, written as 66 with
    bends from -200 cents, or as 64 bending up; either way, one note and not a split."""
    t = np.arange(int(TOTAL_S * SR)) / SR
    pitch = np.full(t.size, np.nan)
    amp = np.zeros(t.size)
    for start, end, p0, p1 in MELODY:
        span = (t >= start) & (t < end)
        pitch[span] = p0 + (p1 - p0) * (t[span] - start) / (end - start)
        amp[span] = 0.4
    for start, end in ((0.30, 0.80), (0.85, 2.50), (2.70, 3.20)):  # attacks and releases of 10 ms
        i, j = int(start * SR), int(end * SR)
        ramp = min(int(0.01 * SR), (j - i) // 2)
        amp[i : i + ramp] *= np.linspace(0, 1, ramp)
        amp[j - ramp : j] *= np.linspace(1, 0, ramp)
    hz = 440.0 * 2 ** ((np.nan_to_num(pitch, nan=60.0) - 69) / 12)
    phase = 2 * np.pi * np.cumsum(hz) / SR
    wave = sum((0.5**k) * np.sin((k + 1) * phase) for k in range(4))
    return (amp * wave / 2).astype(np.float32)


def _check_melody(notes: list[tuple[float, float, int, str]]) -> None:
    """(start, end, pitch, bends) rows: four notes, the glide kept inside one bent note."""
    assert len(notes) == 4, notes
    (s0, e0, p0, _), (s1, e1, p1, _), (s2, e2, p2, bends), (s3, e3, p3, _) = notes
    assert (p0, p1, p3) == (60, 64, 69)
    assert abs(s0 - 0.30) < 0.04 and abs(e0 - 0.80) < 0.06
    assert abs(s3 - 2.70) < 0.04 and abs(e3 - 3.20) < 0.06
    assert p2 in (64, 66) and abs(e2 - 2.50) < 0.06
    assert bends.split(), "the glide is written as pitch bends"
    cents = [int(c) for c in bends.split()]
    assert max(cents) - min(cents) >= 100  # the bend covers most of the whole tone
    assert abs(e1 - s2) < 0.08 or abs(s1 - 0.85) < 0.04  # the glide starts where 64 was held


# ---------- the registry ----------


def test_names_are_the_cli_choices_and_hints_say_how_to_install() -> None:
    from midiscribe.cli.transcribe import MODEL_NAMES

    assert tuple(MODELS) == MODEL_NAMES == ("general", "piano", "mono")
    assert registry.DEFAULT_MODEL == "general" and MODELS["general"].extra is None
    assert MODELS["piano"].install_hint.startswith("pip install 'midiscribe[piano]'")
    assert "--no-deps pesto-pitch==2.0.1" in MODELS["mono"].install_hint
    assert MODELS["piano"].factory == "midiscribe.core.piano:PianoModel"
    for spec in MODELS.values():
        assert spec.licence and spec.description


def test_unknown_model_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownModelError) as info:
        get_model("violin")
    assert info.value.valid == ("general", "piano", "mono")
    assert "general, piano, mono" in str(info.value)
    assert isinstance(info.value, ValueError)  # an option error: 400 in the API


def test_missing_extra_is_a_typed_error_with_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(
        name="harp",
        description="d",
        extra="harp",
        licence="l",
        requires=("numpy", "no_such_module_for_midiscribe"),
        factory="no_such_module_for_midiscribe:Harp",
    )
    monkeypatch.setitem(MODELS, "harp", spec)
    assert not spec.installed()
    with pytest.raises(ModelNotInstalledError) as info:
        get_model("harp")
    assert info.value.install_hint == "pip install 'midiscribe[harp]'" and info.value.model == "harp"
    assert "pip install 'midiscribe[harp]'" in str(info.value)


def test_a_model_loads_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []

    class Fake:
        name = "fake"

        def __init__(self) -> None:
            built.append(self)

        def transcribe(self, audio: Any, options: Any = None, **_: Any) -> Any:
            raise NotImplementedError

    monkeypatch.setattr(sys.modules[__name__], "Fake", Fake, raising=False)
    spec = ModelSpec("fake", "d", None, "l", ("numpy",), f"{__name__}:Fake")
    monkeypatch.setitem(MODELS, "fake", spec)
    monkeypatch.delitem(registry._LOADED, "fake", raising=False)
    first = get_model("fake")
    assert get_model("fake") is first and len(built) == 1
    assert isinstance(get_model("general"), registry.NoteModel)


def test_heavy_models_have_their_queue_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from midiscribe.service.settings import Settings

    s = Settings(broker_url="redis://127.0.0.1:6379/0", queue_prefix="q", long_audio_s=600)
    assert s.queue_for(30, "piano") == "q.heavy" and s.queue_for(900, "piano") == "q.heavy"
    assert s.queue_for(30, "mono") == "q.default" and s.queue_for(900, "mono") == "q.long"
    assert s.task_time_limit_s(60, "piano") == 300 + 4 * 60 > s.task_time_limit_s(60)
    assert s.longest_task_s >= s.hard_time_limit_s(None, "piano")
    monkeypatch.setenv("MIDISCRIBE_HEAVY_MODELS", "piano,mono")
    monkeypatch.setenv("MIDISCRIBE_MODEL_TIME_PER_AUDIO_S", '{"piano": 8}')
    s = Settings(broker_url="redis://127.0.0.1:6379/0", queue_prefix="q")
    assert s.queue_for(5, "mono") == "q.heavy" and s.task_time_limit_s(10, "piano") == 300 + 80


def test_piano_tasks_are_published_to_the_heavy_queue(tmp_path: Path) -> None:
    """Through the real broker: the API's publish and the sweep's re-publish both route by model."""
    from cluster_harness import ServiceDown, scratch_redis
    from midiscribe.service.records import keys, tasks
    from midiscribe.service.settings import Settings
    from midiscribe.service.wiring import build_engine
    from midiscribe.service.work.dispatch import CeleryDispatcher, Sweeper, submit

    try:
        cm = scratch_redis()
        redis_db = cm.__enter__()
    except ServiceDown as exc:
        pytest.skip(str(exc))
    try:
        settings = Settings(data_dir=tmp_path, broker_url=redis_db.url, queue_prefix=redis_db.prefix)
        engine = build_engine(Settings(data_dir=tmp_path))  # the embedded schema on SQLite
        dispatcher = CeleryDispatcher(settings)
        client = redis_db.client()
        _, key = keys.create_key(engine, "routing")
        made = {}
        for model in ("piano", "general", "mono"):
            made[model] = tasks.create_task(
                engine,
                key_id=key.id,
                request={"model": model},
                input_kind="url",
                input_ref="https://example.invalid/a.wav",
                input_name="a.wav",
                webhook_url="",
                input_duration_s=5.0,
            )
        submit(engine, dispatcher, made["piano"], 5.0, "piano")
        submit(engine, dispatcher, made["general"], 5.0, "general")
        p = redis_db.prefix
        assert client.llen(f"{p}.heavy") == 1 and client.llen(f"{p}.default") == 1
        # mono was never published: the sweep finds it, and the piano one once its publish is old
        sweeper = Sweeper(engine, dispatcher, settings.model_copy(update={"redispatch_after_s": 0.01}))
        time.sleep(0.05)
        wait_until(lambda: sweeper.sweep_once() or client.llen(f"{p}.default") >= 2, timeout=10, what="sweep")
        assert client.llen(f"{p}.default") >= 2  # general again, and mono
        assert client.llen(f"{p}.heavy") >= 1 and client.llen(f"{p}.long") == 0
        engine.dispose()
    finally:
        cm.__exit__(None, None, None)


# ---------- the mono model ----------


@needs_mono
def test_mono_through_the_cli(tmp_path: Path) -> None:
    src = encode(tmp_path / "glide.wav", glide_melody(), sr=SR)
    out = subprocess.run(
        [str(EXE), "transcribe", "--model", "mono", "--notes-csv", "-o", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    with (tmp_path / "glide.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    notes = [(float(r["start_s"]), float(r["end_s"]), int(r["pitch_midi"]), r["pitch_bends"]) for r in rows]
    _check_melody(notes)
    assert all(0.5 <= float(r["confidence"]) <= 1 for r in rows)
    assert (tmp_path / "glide.mid").stat().st_size > 0
    listing = subprocess.run([str(EXE), "models"], capture_output=True, text=True, timeout=60, env={"COLUMNS": "300"})
    assert listing.returncode == 0 and "mono" in listing.stdout and "LGPL-3.0" in listing.stdout


def test_cli_refuses_an_unknown_model(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(EXE), "transcribe", "--model", "harp", str(tmp_path / "x.wav")], capture_output=True, text=True
    )
    assert out.returncode == 2 and "general" in out.stderr and "mono" in out.stderr


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    svc = Service(tmp_path_factory.mktemp("models-svc")).start()
    key, _ = svc.create_key("models")
    yield svc, key
    svc.stop()


def _finished(svc: Service, key: str, task_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(
            f"{svc.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
        ).json()
        return body if body["status"] in ("completed", "failed") else None

    return wait_until(done, timeout=180, what=f"task {task_id}")  # type: ignore[no-any-return]


@needs_mono
def test_mono_through_the_api(service: Any, tmp_path: Path) -> None:
    svc, key = service
    src = encode(tmp_path / "glide.flac", glide_melody(), sr=SR, kind="flac")
    headers = {"Authorization": f"Bearer {key}"}
    listed = httpx.get(f"{svc.url}/api/public/v1/models", headers=headers).json()
    by_name = {m["name"]: m for m in listed["models"]}
    assert list(by_name) == ["general", "piano", "mono"] and by_name["general"]["default"]
    assert by_name["mono"]["installed"] and "LGPL" in by_name["mono"]["licence"]
    with src.open("rb") as fh:
        r = httpx.post(
            f"{svc.url}/api/public/v1/audio_to_midi",
            headers=headers,
            files={"audio_file": ("glide.flac", fh)},
            data={"model": "mono", "sonify_midi": "false"},
        )
    assert r.status_code == 200, r.text
    task = _finished(svc, key, r.json()["task_id"])
    assert task["status"] == "completed", task
    assert task["options"]["model"] == "mono" and task["result"]["n_notes"] == 4
    text = httpx.get(task["result"]["notes_file_path"]).text
    rows = list(csv.DictReader(text.splitlines()))
    _check_melody([(float(r["start_s"]), float(r["end_s"]), int(r["pitch_midi"]), r["pitch_bends"]) for r in rows])
    assert task["result"]["model_outputs_path"] == ""  # only the general model keeps posteriorgrams
    notes = httpx.post(f"{svc.url}/api/public/v1/tasks/{task['task_id']}/notes", headers=headers, json={})
    assert notes.status_code == 200, notes.text
    shown = notes.json()["notes"]  # [start_s, end_s, pitch, velocity, bends, amplitude, confidence]
    assert [n[2] for n in shown] == [int(r["pitch_midi"]) for r in rows]
    assert all(n[6] is not None and 0 < n[6] <= 1 for n in shown)
    # the kept notes are filtered by the options that apply to them: here, notes above 300 Hz go
    high = httpx.post(
        f"{svc.url}/api/public/v1/tasks/{task['task_id']}/notes", headers=headers, json={"maximum_frequency": 300}
    )
    assert high.status_code == 200 and [n[2] for n in high.json()["notes"]] == [60]


def test_api_refuses_an_unknown_model(service: Any) -> None:
    svc, key = service
    r = httpx.post(
        f"{svc.url}/api/public/v1/audio_to_midi",
        headers={"Authorization": f"Bearer {key}"},
        json={"audio_path": "https://example.com/a.wav", "model": "harp"},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_parameters" and "general, piano, mono" in error["message"]


def test_a_model_not_installed_is_400_with_the_command(tmp_path: Path) -> None:
    """A server whose Python cannot import PESTO (hidden by a sitecustomize, as if never installed)."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['pesto'] = None\nsys.modules['transkun'] = None\n")
    svc = Service(tmp_path / "svc", env={"PYTHONPATH": str(hide)}).start()
    try:
        key, _ = svc.create_key("hidden")
        headers = {"Authorization": f"Bearer {key}"}
        listed = {m["name"]: m for m in httpx.get(f"{svc.url}/api/public/v1/models", headers=headers).json()["models"]}
        assert listed["general"]["installed"] and not listed["mono"]["installed"] and not listed["piano"]["installed"]
        src = encode(tmp_path / "glide.wav", glide_melody()[: SR // 2], sr=SR)
        with src.open("rb") as fh:
            r = httpx.post(
                f"{svc.url}/api/public/v1/audio_to_midi",
                headers=headers,
                files={"audio_file": ("glide.wav", fh)},
                data={"model": "mono"},
            )
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "model_not_installed"
        assert "pip install 'midiscribe[mono]' && pip install --no-deps pesto-pitch==2.0.1" in error["message"]
    finally:
        svc.stop()
