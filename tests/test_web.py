"""The Endpoint Explorer in real headless Chromium (Debian's, driven by Playwright), against a real
`midiscribe serve`: upload, watch it finish, read the piano roll, play, download, re-tune, errors."""

from __future__ import annotations

import io
import re
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import mido
import pytest

from audiogen import encode, melody
from service_harness import Service

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


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def web_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    svc = Service(tmp_path_factory.mktemp("web"))
    key, _ = svc.create_key("browser")
    svc.start()
    yield svc, key
    svc.stop()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rec")
    events = [(0.3 + 0.45 * i, 0.4, [60, 64, 67, 72, 67, 64][i % 6]) for i in range(16)]
    events += [(0.3 + 0.9 * i, 0.85, 48) for i in range(8)]
    return encode(d / "arpeggio.flac", melody(events, 8.0, sr=44_100), kind="flac")


def note_count(page: object) -> int:
    return int(page.get_attribute("#note-count", "data-count"))  # type: ignore[attr-defined]


def test_explorer_end_to_end(
    browser: object, web_service: tuple[Service, str], recording: Path, tmp_path: Path
) -> None:
    svc, key = web_service
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(svc.url)
    page.fill("#api-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#app:not([hidden])")

    page.set_input_files("#file", str(recording))
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=90_000)
    page.wait_for_function("Number(document.getElementById('note-count').dataset.count) > 0")
    shown = note_count(page)
    task_id = page.text_content("#task-id")
    assert task_id

    # The piano roll shows the task's notes: as many as the CSV the API wrote.
    csv_url = page.get_attribute("#dl-csv", "href")
    rows = httpx.get(csv_url).text.strip().splitlines()
    assert shown == len(rows) - 1 and shown >= 20

    # Both players load their audio.
    for player in ("audio-original", "audio-midi"):
        page.wait_for_function(f"document.getElementById('{player}').readyState >= 1", timeout=30_000)
        assert page.evaluate(f"document.getElementById('{player}').duration") > 7

    # The downloads are valid files.
    midi = mido.MidiFile(file=io.BytesIO(httpx.get(page.get_attribute("#dl-mid", "href")).content))
    assert sum(1 for t in midi.tracks for m in t if m.type == "note_on" and m.velocity) == shown
    with wave.open(io.BytesIO(httpx.get(page.get_attribute("#dl-wav", "href")).content)) as w:
        assert w.getnframes() / w.getframerate() > 7

    # Playing moves the playhead; A/B keeps the position.
    page.click("#play")
    page.wait_for_function("document.getElementById('audio-original').currentTime > 0.3", timeout=15_000)
    page.check("input[name=listen][value=midi]")
    assert page.evaluate("document.getElementById('audio-original').paused")
    page.click("#play")

    # Moving the onset slider re-derives the notes (no model run) and redraws.
    page.focus("#r-onset")
    page.keyboard.press("End")
    page.wait_for_function(f"Number(document.getElementById('note-count').dataset.count) !== {shown}")
    fewer = note_count(page)
    assert fewer < shown
    with page.expect_download() as dl:
        page.click("#dl-retuned")
    retuned = mido.MidiFile(dl.value.path())
    assert sum(1 for t in retuned.tracks for m in t if m.type == "note_on" and m.velocity) == fewer

    # The request as code, and the history.
    assert "audio_file=@" in page.text_content("#curl-snippet")
    assert "requests.post" in page.text_content("#python-snippet")
    assert recording.name in page.text_content("#history")

    # Keyboard: the roll scrolls and zooms from the keyboard.
    page.focus("#roll")
    page.keyboard.press("+")
    page.keyboard.press("ArrowRight")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 400, "page overflows a phone-width screen"
    page.screenshot(path=str(ARTIFACTS / "explorer-phone.png"), full_page=True)
    assert not errors, errors
    context.close()


def test_bad_file_shows_the_api_error(browser: object, web_service: tuple[Service, str], tmp_path: Path) -> None:
    svc, key = web_service
    bad = tmp_path / "notes.mp3"
    bad.write_bytes(b"definitely not audio " * 500)
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(svc.url)
    page.fill("#api-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#app:not([hidden])")
    page.set_input_files("#file", str(bad))
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    message = page.text_content("#error")
    assert "422" in message and "unsupported_audio" in message
    page.close()


def test_wrong_key_is_refused(browser: object, web_service: tuple[Service, str]) -> None:
    svc, _ = web_service
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(svc.url)
    page.fill("#api-key", "ms_not_a_key")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:not([hidden])")
    assert "401" in page.text_content("#signin-error")
    page.close()


def test_keyless_local_mode_in_the_development_setting(browser: object, tmp_path: Path) -> None:
    svc = Service(tmp_path / "dev", workers=0, env={"MIDISCRIBE_DEV_MODE": "true"})
    svc.start()
    try:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(svc.url)
        page.wait_for_selector("#app:not([hidden])")
        assert "development" in page.text_content("#who-label")
        page.close()
    finally:
        svc.stop()


def test_static_files_are_small_and_local(web_service: tuple[Service, str]) -> None:
    svc, _ = web_service
    html = httpx.get(svc.url + "/").text
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html), "the page loads something from elsewhere"
    assert "/static/app.js" in html and "/static/style.css" in html
    for name in ("app.js", "style.css"):
        r = httpx.get(f"{svc.url}/static/{name}")
        assert r.status_code == 200 and len(r.content) < 40_000
    assert httpx.get(svc.url + "/web/config").json() == {"dev_mode": False, "local_key": None}
