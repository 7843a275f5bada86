"""The Endpoint Explorer in real headless Chromium (Debian's, driven by Playwright), against a real
`midiscribe serve`: the main path, and each defect of issue 15 as a user meets it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from service_harness import Service
from web_support import (
    API,
    ARTIFACTS,
    PHONE,
    WebTasks,
    arpeggio,
    bent_midi_notes,
    midi_notes,
    new_page,
    no_horizontal_overflow,
    note_count,
    open_task,
    sign_in,
)


def test_upload_end_to_end(browser: Any, web_tasks: WebTasks, tmp_path: Path) -> None:
    from audiogen import encode

    svc, key = web_tasks.svc, web_tasks.key
    recording = encode(tmp_path / "upload.flac", arpeggio(3.5), kind="flac")
    page, errors = new_page(browser, svc, key)
    page.set_input_files("#file", str(recording))
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=90_000)
    page.wait_for_function("Number(document.getElementById('note-count').dataset.count) > 0")
    shown = note_count(page)
    task_id = page.text_content("#task-id")
    assert task_id and page.evaluate("location.hash") == f"#/tasks/{task_id}"

    # The roll shows the task's notes: as many as the CSV and the MIDI file the server wrote.
    rows = httpx.get(page.get_attribute("#dl-csv", "href")).text.strip().splitlines()
    assert shown == len(rows) - 1 >= 8
    assert len(midi_notes(httpx.get(page.get_attribute("#dl-mid", "href")).content)) == shown

    # Re-tune: the onset slider re-derives the notes (no model run); the download is what is shown.
    page.focus("#r-onset")
    page.keyboard.press("End")
    page.wait_for_function(f"Number(document.getElementById('note-count').dataset.count) !== {shown}")
    fewer = note_count(page)
    assert fewer < shown
    with page.expect_download() as dl:
        page.click("#dl-shown-mid")
    assert len(midi_notes(Path(dl.value.path()).read_bytes())) == fewer

    assert "audio_file=@" in page.text_content("#curl-snippet")
    assert "requests.post" in page.text_content("#python-snippet")
    assert "upload.flac" in page.text_content("#history")
    assert "processed on this server" in page.text_content("#privacy")
    assert not errors, errors
    page.context.close()


def test_bad_file_shows_the_api_error(browser: Any, web_tasks: WebTasks, tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp3"
    bad.write_bytes(b"definitely not audio " * 500)
    page, _ = new_page(browser, web_tasks.svc, web_tasks.key)
    page.set_input_files("#file", str(bad))
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    message = page.text_content("#error")
    assert "422" in message and "unsupported_audio" in message
    page.context.close()


def test_wrong_key_is_refused(browser: Any, web_tasks: WebTasks) -> None:
    page, _ = new_page(browser, web_tasks.svc, None)
    page.fill("#api-key", "ms_not_a_key")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:not([hidden])")
    assert "401" in page.text_content("#signin-error")
    page.context.close()


# ---------- issue 15, defect 1: "This request as code" breaks the layout ----------
def test_snippets_wrap_inside_their_box(browser: Any, web_tasks: WebTasks) -> None:
    from audiogen import encode

    assert web_tasks.audio_dir is not None and web_tasks.files is not None
    encode(
        web_tasks.audio_dir / "by-url-with-a-long-name-that-keeps-going-and-going-and-going.flac",
        arpeggio(2.0),
        kind="flac",
    )
    url = f"{web_tasks.files.url}/by-url-with-a-long-name-that-keeps-going-and-going-and-going.flac?" + "x=1&" * 40
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    page.fill("#url", url)
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    page.click("#snippets summary")
    for viewport in ({"width": 1280, "height": 900}, PHONE):
        page.set_viewport_size(viewport)
        page.wait_for_function("requestAnimationFrame(() => 0) >= 0")
        no_horizontal_overflow(page)
        # the roll's drawing follows its box (never left stretched after a layout change)
        page.wait_for_function(
            "(() => { const c = document.getElementById('roll'); "
            "return c.width === Math.round(c.clientWidth * devicePixelRatio); })()",
            timeout=5_000,
        )
        assert page.evaluate("document.getElementById('roll').clientWidth") <= viewport["width"]
    assert not errors, errors
    page.context.close()


# ---------- defect 2: a slow older re-tune answer overwrote a newer one ----------
SLOW_NOTES = """
(() => {
  const real = window.fetch;
  window.fetch = (url, opts = {}) => {
    if (String(url).endsWith('/notes') && String(opts.body || '').includes('"onset_threshold":0.95')) {
      window.__slowStarted = true;
      return new Promise((r) => setTimeout(r, 1500))
        .then(() => real(url, opts))
        .finally(() => { window.__slowDone = true; });
    }
    return real(url, opts);
  };
})();
"""


def test_only_the_latest_retune_draws(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    page.add_init_script(SLOW_NOTES)
    page.reload()
    page.wait_for_selector("#app:not([hidden])")
    open_task(page, task["task_id"])
    page.focus("#r-onset")
    page.keyboard.press("End")  # 0.95: its answer is held back 1.5 s
    page.wait_for_function("window.__slowStarted === true")
    page.keyboard.press("Home")  # 0.05: answered at once
    page.wait_for_function("window.__slowDone === true", timeout=10_000)
    page.wait_for_timeout(200)  # let a stale answer (if one were drawn) land
    want = web_tasks.notes(task["task_id"], onset_threshold=0.05)["n_notes"]
    assert note_count(page) == want
    assert page.is_hidden("#error"), page.text_content("#error")  # an aborted request is no error
    assert not errors, errors
    page.context.close()


# ---------- defect 3: roll != downloaded file when the minimum length is outside the slider's range ----------
def test_roll_matches_the_file_for_any_minimum_length(browser: Any, web_tasks: WebTasks) -> None:
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    for name, ms in (("minlen15", 15), ("minlen1000", 1000)):
        task = web_tasks.done(name)
        open_task(page, task["task_id"])
        page.wait_for_function(
            f"Number(document.getElementById('note-count').dataset.count) === {task['result']['n_notes']}"
        )
        assert float(page.input_value("#r-minlen")) == ms
        server_file = midi_notes(httpx.get(task["result"]["midi_file_path"]).content)
        assert note_count(page) == len(server_file)
        with page.expect_download() as dl:
            page.click("#dl-shown-mid")
        shown = midi_notes(Path(dl.value.path()).read_bytes())
        assert [n[1:] for n in shown] == [n[1:] for n in server_file]  # pitches and velocities
        assert max(abs(a[0] - b[0]) for a, b in zip(shown, server_file, strict=True)) <= 0.0011  # a tick
    # the form accepts what the re-tune control accepts
    for attr in ("min", "max"):
        assert page.get_attribute("#minlen", attr) == page.get_attribute("#r-minlen", attr)
    assert not errors, errors
    page.context.close()


# ---------- defect 4: pitch bends drawn != bends written ----------
def test_drawn_bends_are_the_written_bends(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, _ = new_page(browser, web_tasks.svc, web_tasks.key)
    with page.expect_response(lambda r: r.url.endswith("/notes")) as answer:
        open_task(page, task["task_id"])
    drawn = answer.value.json()["notes"]
    bent_drawn = sum(1 for n in drawn if any(n[4]))
    csv_rows = httpx.get(task["result"]["notes_file_path"]).text.strip().splitlines()[1:]
    bent_csv = sum(1 for row in csv_rows if re.search(r'"[^"]*[1-9][^"]*"$', row))
    bent_mid = bent_midi_notes(httpx.get(task["result"]["midi_file_path"]).content)
    assert bent_drawn == bent_csv == bent_mid
    # the recording is steady, in-tune tones: no note is bent
    assert bent_drawn == 0
    page.context.close()


# ---------- defect 5: player state out of step ----------
def test_one_transport_says_what_is_playing(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    page.wait_for_function("document.querySelector('audio').readyState >= 1", timeout=30_000)
    page.check("input[name=listen][value=original]")
    # no media element shows controls of its own beside the page's transport
    assert page.evaluate("[...document.querySelectorAll('audio, video')].every((a) => !a.controls)")
    # something else starts an element (a media key, the browser's own media controls)
    page.evaluate("[...document.querySelectorAll('audio')].at(-1).play()")
    page.wait_for_function("document.getElementById('play').textContent === 'Pause'")
    page.wait_for_function("Number(document.getElementById('time').dataset.position) > 0.2", timeout=10_000)
    page.click("#play")  # Pause stops everything
    page.wait_for_function("[...document.querySelectorAll('audio')].every((a) => a.paused)")
    assert page.text_content("#play") == "Play"
    position = float(page.get_attribute("#time", "data-position"))
    page.wait_for_timeout(300)
    assert float(page.get_attribute("#time", "data-position")) == position
    assert not errors, errors
    page.context.close()


# ---------- defect 6: stale messages ----------
def test_no_stale_status_or_error(browser: Any, web_tasks: WebTasks) -> None:
    failed, done = web_tasks.done("failed"), web_tasks.done("main")
    assert failed["status"] == "failed"
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    page.evaluate(f"location.hash = '#/tasks/{failed['task_id']}'")
    page.wait_for_selector("#error:not([hidden])")
    assert "failed" in page.text_content("#status-text")
    page.click(f"#history a[href='#/tasks/{done['task_id']}']")
    page.wait_for_selector(f"#result[data-task='{done['task_id']}']")
    assert page.text_content("#status-text").startswith("completed")
    assert page.is_hidden("#error")
    # an error, then a submit that the browser's own validation stops: the old error goes
    page.evaluate("location.hash = ''")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    page.fill("#url", "not a url")
    page.click("#submit")
    page.wait_for_selector("#error", state="hidden")
    assert not errors, errors
    page.context.close()


# ---------- defect 7: silent failures ----------
def test_notes_play_without_a_server_wav(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("minlen15")
    assert not task["result"]["sonify_file_path"]
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    page.check("input[name=listen][value=midi]")
    page.click("#play")
    page.wait_for_function("Number(document.getElementById('time').dataset.position) > 0.3", timeout=10_000)
    assert int(page.get_attribute("#time", "data-voices")) > 0  # the page's synth plays the notes
    page.click("#play")
    assert not errors, errors
    page.context.close()


def test_revoked_key_signs_out_with_a_message(browser: Any, web_tasks: WebTasks) -> None:
    svc = web_tasks.svc
    key = web_tasks.new_key("soon revoked")
    page, errors = new_page(browser, svc, key)
    web_tasks.revoke(key)  # as `midiscribe keys revoke` does
    page.click("#refresh")
    page.wait_for_selector("#signin:not([hidden])")
    assert "sign in again" in page.text_content("#signin-note")
    assert page.evaluate("document.activeElement.id") == "api-key"
    assert not errors, errors
    page.context.close()


# ---------- defect 8: accessibility (axe runs in test_web_a11y.py) ----------
def test_names_tab_stops_text_alternative_and_focus(browser: Any, web_tasks: WebTasks) -> None:
    from playwright.sync_api import expect

    task = web_tasks.done("main")
    page, _ = new_page(browser, web_tasks.svc, None)
    sign_in(page, web_tasks.key)
    assert page.evaluate("document.activeElement.id") == "new-title"  # focus is not lost after sign-in
    page.click("summary:has-text('Note options')")
    expect(page.locator("#onset")).to_have_accessible_name("Onset threshold")
    expect(page.locator("#frame")).to_have_accessible_name("Frame threshold")
    open_task(page, task["task_id"])
    expect(page.locator("#r-onset")).to_have_accessible_name("Onset threshold")
    expect(page.locator("#r-frame")).to_have_accessible_name("Frame threshold")
    # the roll has a text alternative
    expect(page.locator("#roll")).to_have_accessible_name(re.compile(r"\d+ notes from [A-G]#?-?\d to"))
    page.click("#notes-table-box summary")
    page.wait_for_function(  # the table is filled when it opens
        "document.querySelectorAll('#notes-table tbody tr').length === "
        "Number(document.getElementById('note-count').dataset.count)"
    )
    # the hidden file input is no tab stop of its own
    page.focus("#new-title")
    stops = []
    for _ in range(8):
        page.keyboard.press("Tab")
        stops.append(page.evaluate("document.activeElement.id"))
    assert "file" not in stops and "drop" in stops
    page.context.close()


# ---------- defect 9: the development setting ----------
def test_dev_mode_sign_out_and_host_check(browser: Any, tmp_path: Path) -> None:
    svc = Service(tmp_path / "dev", workers=0, env={"MIDISCRIBE_DEV_MODE": "true"})
    svc.start()
    try:
        assert httpx.get(svc.url + "/web/config").json()["local_key"]
        for host in ("example.com", "example.com:80", "127.0.0.1.nip.io", "evil.localhost.com"):
            r = httpx.get(svc.url + "/web/config", headers={"Host": host})
            assert r.json()["local_key"] is None, host
        for host in (f"localhost:{svc.port}", "[::1]", "127.0.0.1"):
            assert httpx.get(svc.url + "/web/config", headers={"Host": host}).json()["local_key"], host
        page, errors = new_page(browser, svc, None)
        page.wait_for_selector("#app:not([hidden])")
        assert "development" in page.text_content("#who-label")
        page.click("#sign-out")
        page.wait_for_selector("#signin:not([hidden])")
        page.reload()
        page.wait_for_selector("#signin:not([hidden])")  # signed out stays signed out
        assert page.is_hidden("#app")
        page.click("#use-local-key")
        page.wait_for_selector("#app:not([hidden])")
        assert not errors, errors
        page.context.close()
    finally:
        svc.stop()


# ---------- defect 10: phones ----------
def touch(cdp: Any, kind: str, points: list[tuple[float, float]]) -> None:
    cdp.send(
        "Input.dispatchTouchEvent",
        {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
    )


def test_phone_swipe_pinch_and_targets(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key, viewport=PHONE, has_touch=True, is_mobile=True)
    open_task(page, task["task_id"])
    page.locator("#roll").scroll_into_view_if_needed()
    page.click("#zoom-in")
    page.click("#zoom-in")
    box = page.locator("#roll").bounding_box()
    cy = box["y"] + box["height"] * 0.6
    cdp = page.context.new_cdp_session(page)
    start = float(page.get_attribute("#roll", "data-view-start"))
    touch(cdp, "touchStart", [(box["x"] + 300, cy)])  # swipe left: later music comes into view
    for x in range(300, 100, -20):
        touch(cdp, "touchMove", [(box["x"] + x, cy)])
    touch(cdp, "touchEnd", [])
    page.wait_for_function(f"Number(document.getElementById('roll').dataset.viewStart) > {start}")
    px = float(page.get_attribute("#roll", "data-px-per-sec"))
    touch(cdp, "touchStart", [(box["x"] + 150, cy), (box["x"] + 200, cy)])  # pinch out: zoom in
    for d in range(50, 200, 15):
        touch(cdp, "touchMove", [(box["x"] + 175 - d / 2, cy), (box["x"] + 175 + d / 2, cy)])
    touch(cdp, "touchEnd", [])
    page.wait_for_function(f"Number(document.getElementById('roll').dataset.pxPerSec) > {px * 1.5}")

    page.click("summary:has-text('Note options')")
    small = page.evaluate(
        """() => [...document.querySelectorAll('button, a[href], select, input, summary, [role=button], [tabindex]')]
          .filter((el) => el.offsetParent !== null && !el.closest('.visually-hidden') && el.tabIndex >= 0)
          .map((el) => {
            const t = el.closest('label:has(> input)') || el, r = t.getBoundingClientRect();
            return [el.id || el.name || el.textContent.trim().slice(0, 20), Math.round(r.width), Math.round(r.height)];
          })
          .filter(([, w, h]) => w < 44 || h < 44)"""
    )
    assert not small, f"targets under 44 px on a phone: {small}"
    no_horizontal_overflow(page)
    assert not errors, errors
    page.context.close()


def test_errors_use_the_forms_words(browser: Any, web_tasks: WebTasks) -> None:
    page, _ = new_page(browser, web_tasks.svc, web_tasks.key)
    assert web_tasks.files is not None
    page.fill("#url", f"{web_tasks.files.url}/not-audio.mp3")
    page.click("summary:has-text('Note options')")
    page.fill("#fmin", "5000")
    page.fill("#fmax", "100")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    message = page.text_content("#error")
    assert "Lowest frequency (Hz)" in message and "Highest frequency (Hz)" in message, message
    assert "_hz" not in message and "minimum_frequency" not in message, message
    page.context.close()


def test_static_files_are_small_and_local(web_service: tuple[Service, str]) -> None:
    svc, _ = web_service
    html = httpx.get(svc.url + "/").text
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html), "the page loads something from elsewhere"
    assert "/static/app.js" in html and "/static/style.css" in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    web = Path(__file__).resolve().parents[1] / "src" / "midiscribe" / "web"
    for path in web.iterdir():
        r = httpx.get(f"{svc.url}/static/{path.name}")
        assert r.status_code == 200 and len(r.content) < 40_000, path.name
        if path.suffix == ".js":
            assert not re.search(r"""(import|from)\s*\(?\s*["'](https?:)?//""", r.text), path.name
    assert httpx.get(svc.url + "/web/config").json() == {"dev_mode": False, "local_key": None}
    assert httpx.get(f"{svc.url}{API}/tasks").status_code == 401
    ARTIFACTS.mkdir(exist_ok=True)
