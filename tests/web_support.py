"""What the Endpoint Explorer's browser tests share: one `midiscribe serve`, one Debian Chromium, and
tasks made once through the public API (tiny generated audio), so each test only drives the page.

The fixtures are session-scoped and registered by tests/conftest.py, so test_web.py,
test_web_features.py and test_web_a11y.py all use the same server and browser.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mido
import pytest

from audiogen import encode, melody
from service_harness import FileServer, Service

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]
API = "/api/public/v1"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def arpeggio(seconds: float = 8.0) -> Any:
    """Steady, in-tune harmonic tones: a C major arpeggio over a bass line (notes overlap)."""
    n = int((seconds - 0.6) / 0.45)
    events = [(0.3 + 0.45 * i, 0.4, [60, 64, 67, 72, 67, 64][i % 6]) for i in range(n)]
    events += [(0.3 + 0.9 * i, 0.85, 48) for i in range(int((seconds - 0.6) / 0.9))]
    return melody(events, seconds, sr=44_100)


@dataclass
class WebTasks:
    """Tasks made through the API for the browser tests, by name; each waited on when first used."""

    svc: Service
    key: str
    ids: dict[str, str] = field(default_factory=dict)
    files: FileServer | None = None
    audio_dir: Path | None = None

    def new_key(self, name: str) -> str:
        """A new API key, written to the service's database directly (a CLI process costs seconds)."""
        from midiscribe.service.records.db import make_engine
        from midiscribe.service.records.keys import create_key

        engine = make_engine(f"sqlite:///{(self.svc.data_dir / 'midiscribe.db').resolve()}")
        try:
            return create_key(engine, name)[0]
        finally:
            engine.dispose()

    def revoke(self, key: str) -> None:
        from midiscribe.service.records.db import make_engine
        from midiscribe.service.records.keys import revoke

        engine = make_engine(f"sqlite:///{(self.svc.data_dir / 'midiscribe.db').resolve()}")
        try:
            assert revoke(engine, key[:10]) == 1
        finally:
            engine.dispose()

    def submit(self, name: str, *, upload: Path | None = None, key: str | None = None, **fields: Any) -> str:
        headers = {"Authorization": key or self.key}
        if upload is not None:
            data = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
            with upload.open("rb") as fh:
                r = httpx.post(
                    f"{self.svc.url}{API}/audio_to_midi",
                    headers=headers,
                    data=data,
                    files={"audio_file": (upload.name, fh)},
                    timeout=30,
                )
        else:
            r = httpx.post(f"{self.svc.url}{API}/audio_to_midi", headers=headers, json=fields, timeout=30)
        assert r.status_code == 200, r.text
        task_id: str = r.json()["task_id"]
        self.ids[name] = task_id
        return task_id

    def status(self, task_id: str, key: str | None = None) -> dict[str, Any]:
        r = httpx.get(f"{self.svc.url}{API}/tasks/{task_id}", headers={"Authorization": key or self.key}, timeout=10)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def done(self, name: str, timeout: float = 90) -> dict[str, Any]:
        """The task once it has finished (completed or failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.status(self.ids[name])
            if task["status"] in ("completed", "failed", "cancelled"):
                return task
            time.sleep(0.2)
        raise AssertionError(f"task {name} did not finish in {timeout} s")

    def notes(self, task_id: str, **options: Any) -> dict[str, Any]:
        r = httpx.post(
            f"{self.svc.url}{API}/tasks/{task_id}/notes", headers={"Authorization": self.key}, json=options, timeout=30
        )
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def web_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    env = {"MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "100", "MIDISCRIBE_RATE_LIMIT_PER_MINUTE": "100000"}
    svc = Service(tmp_path_factory.mktemp("web"), env=env)
    key, _ = svc.create_key("browser")
    svc.start()
    yield svc, key
    svc.stop()


@pytest.fixture(scope="session")
def web_tasks(web_service: tuple[Service, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebTasks]:
    """Queued at once; the one worker runs them in this order while the first tests start."""
    svc, key = web_service
    d = tmp_path_factory.mktemp("web-audio")
    tasks = WebTasks(svc, key, audio_dir=d)
    main = encode(d / "arpeggio.flac", arpeggio(6.0), kind="flac")
    short = encode(d / "short.flac", arpeggio(2.5), kind="flac")
    (d / "not-audio.mp3").write_bytes(b"this is text, not audio " * 200)
    tasks.files = FileServer(d)
    tasks.submit("main", upload=main)
    tasks.submit("minlen15", upload=short, minimum_note_length=15, sonify_midi=False)
    tasks.submit("minlen1000", upload=short, minimum_note_length=1000)
    tasks.submit("failed", audio_path=f"{tasks.files.url}/not-audio.mp3")
    yield tasks
    tasks.files.close()


def new_page(
    browser: Any, svc: Service, key: str | None, *, viewport: dict[str, int] | None = None, **context: Any
) -> tuple[Any, list[str]]:
    """A fresh context and page, signed in with ``key`` (unless None); and the page's uncaught errors."""
    ctx = browser.new_context(viewport=viewport or DESKTOP, accept_downloads=True, **context)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(svc.url)
    if key is not None:
        sign_in(page, key)
    return page, errors


def sign_in(page: Any, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#app:not([hidden])")


def open_task(page: Any, task_id: str) -> None:
    """Open a task by its address, as a shared link does."""
    page.evaluate(f"location.hash = '#/tasks/{task_id}'")
    page.wait_for_selector(f"#result[data-task='{task_id}']:not([hidden])", timeout=30_000)


def note_count(page: Any) -> int:
    return int(page.get_attribute("#note-count", "data-count"))


def midi_notes(data: bytes) -> list[tuple[float, int, int]]:
    """(start_s, pitch, velocity) of every note in a MIDI file, sorted."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    out, now = [], 0.0
    for msg in midi:  # iterating a MidiFile yields messages with times in seconds, tempo map applied
        now += msg.time
        if msg.type == "note_on" and msg.velocity:
            out.append((round(now, 3), msg.note, msg.velocity))
    return sorted(out)


def bent_midi_notes(data: bytes) -> int:
    """How many notes carry pitch-wheel messages (a bend between their note-on and note-off)."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    bent = 0
    for track in midi.tracks:
        sounding: dict[int, bool] = {}
        for msg in track:
            if msg.type == "note_on" and msg.velocity:
                sounding[msg.note] = False
            elif msg.type == "pitchwheel" and msg.pitch != 0:
                for note in sounding:
                    sounding[note] = True
            elif msg.type in ("note_off", "note_on"):
                bent += sounding.pop(msg.note, False)
    return bent


def no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.clientWidth")
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')].filter((el) => {
             const r = el.getBoundingClientRect(), s = getComputedStyle(el);
             return r.width > 0 && s.visibility !== 'hidden' && r.right > document.documentElement.clientWidth + 1
               && !el.closest('.visually-hidden');
           }).map((el) => el.id || el.tagName + '.' + el.className)"""
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"the page is wider than {width} px: {wide}"
    assert not wide, f"wider than the screen: {wide}"
