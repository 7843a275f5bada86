"""The Explorer's tools, used as a musician would: edit notes and download them, hear them, loop,
slow down, share a task's address, page through history, drag the MIDI out."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import mido

from web_support import WebTasks, midi_notes, new_page, note_count, open_task, sign_in

# Where a note is drawn, in page coordinates (the roll's own geometry, as the user sees it).
NOTE_AT = """([i, where]) => {
  const { roll, store } = window.explorer, n = store.notes[i], r = roll.c.getBoundingClientRect();
  const x0 = Math.max(roll.x(n.start), 44), x1 = roll.x(n.end);
  const x = where === 'end' ? x1 - 2 : (x0 + x1) / 2;
  return { x: r.left + x, y: r.top + roll.y(n.pitch) + roll.rowH() / 2, row: roll.rowH(),
           start: n.start, pitch: n.pitch, velocity: n.velocity, end: n.end };
}"""


def note_at(page: Any, i: int, where: str = "middle") -> dict[str, float]:
    box: dict[str, float] = page.evaluate(NOTE_AT, [i, where])
    return box


def index_of(page: Any, pitch: int, nth: int = 0) -> int:
    i: int = page.evaluate(
        "([p, k]) => window.explorer.store.notes.map((n, i) => [n, i]).filter(([n]) => n.pitch === p)[k][1]",
        [pitch, nth],
    )
    return i


def download(page: Any, button: str) -> bytes:
    with page.expect_download() as dl:
        page.click(button)
    return Path(dl.value.path()).read_bytes()


def test_edit_three_notes_download_and_reload(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    page.wait_for_function("Number(document.getElementById('note-count').dataset.count) > 20")
    before = midi_notes(download(page, "#dl-shown-mid"))
    n = len(before)
    assert n == note_count(page)

    # 1. delete the second bass note: click it, press Delete
    bass = note_at(page, index_of(page, 48, 1))
    page.mouse.click(bass["x"], bass["y"])
    page.keyboard.press("Delete")
    # 2. move the third E4 up two semitones by dragging it
    e4 = note_at(page, index_of(page, 64, 2))
    page.mouse.move(e4["x"], e4["y"])
    page.mouse.down()
    page.mouse.move(e4["x"], e4["y"] - e4["row"], steps=3)
    page.mouse.move(e4["x"], e4["y"] - 2 * e4["row"], steps=3)
    page.mouse.up()
    # 3. the first G4 softer: select it, type a velocity
    g4 = note_at(page, index_of(page, 67, 0))
    page.mouse.click(g4["x"], g4["y"])
    page.fill("#velocity", "30")
    page.press("#velocity", "Enter")
    page.wait_for_function("document.getElementById('edited-badge').hidden === false")
    assert note_count(page) == n - 1

    after = midi_notes(download(page, "#dl-shown-mid"))
    assert len(after) == n - 1
    assert not any(abs(s - bass["start"]) < 0.002 and p == 48 for s, p, _ in after)  # deleted
    assert any(abs(s - e4["start"]) < 0.002 and p == 66 for s, p, _ in after)  # moved up to F#4
    assert not any(abs(s - e4["start"]) < 0.002 and p == 64 for s, p, _ in after)
    assert [v for s, p, v in after if abs(s - g4["start"]) < 0.002 and p == 67] == [30]  # softer
    csv = download(page, "#dl-shown-csv").decode().strip().splitlines()
    assert csv[0] == "start_s,end_s,pitch_midi,velocity,amplitude,pitch_bends" and len(csv) == n

    # undo and redo step through the three edits
    for _ in range(3):
        page.click("#undo")
    assert note_count(page) == n and page.is_hidden("#edited-badge")
    for _ in range(3):
        page.keyboard.press("Control+Shift+Z")
    assert note_count(page) == n - 1

    # the edit survives a reload (kept in this browser, per task)
    page.wait_for_timeout(400)  # the edit is saved a quarter second after the last change
    page.reload()
    page.wait_for_selector("#result:not([hidden])")
    page.wait_for_function(f"Number(document.getElementById('note-count').dataset.count) === {n - 1}")
    assert page.is_visible("#edited-badge") and "restored" in page.text_content("#retune-note")
    assert midi_notes(download(page, "#dl-shown-mid")) == after
    page.click("#discard-edits")
    page.wait_for_function(f"Number(document.getElementById('note-count').dataset.count) === {n}")
    assert not errors, errors
    page.context.close()


def test_draw_box_select_and_resize(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    n = note_count(page)
    box = page.locator("#roll").bounding_box()
    # draw a note in an empty lane (high above the music)
    page.check("input[name=tool][value=draw]")
    top = box["y"] + 30
    page.mouse.move(box["x"] + 200, top)
    page.mouse.down()
    page.mouse.move(box["x"] + 320, top, steps=4)
    page.mouse.up()
    assert note_count(page) == n + 1
    drawn = page.evaluate("[...window.explorer.store.selected][0]")
    assert drawn["end"] - drawn["start"] > 0.3 and drawn["bends"] == []
    # resize it by its end
    page.check("input[name=tool][value=select]")
    i = page.evaluate("window.explorer.store.notes.indexOf([...window.explorer.store.selected][0])")
    end = note_at(page, i, "end")
    page.mouse.move(end["x"], end["y"])
    page.mouse.down()
    page.mouse.move(end["x"] + 60, end["y"], steps=4)
    page.mouse.up()
    longer = page.evaluate("[...window.explorer.store.selected][0]")
    assert longer["end"] > drawn["end"] + 0.2 and longer["start"] == drawn["start"]
    # box-select the whole first second
    page.mouse.move(box["x"] + 46, box["y"] + 22)
    page.mouse.down()
    page.mouse.move(
        box["x"] + 46 + page.evaluate("window.explorer.roll.view.pxPerSec"), box["y"] + box["height"] - 2, steps=5
    )
    page.mouse.up()
    selected = page.evaluate("window.explorer.store.selected.size")
    assert selected >= 2 and f"{selected} selected" in page.text_content("#selection-text")
    assert not errors, errors
    page.context.close()


def test_play_space_loop_speed_and_balance(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    page.click("#result-title")  # focus on the page, not in a field
    x0 = float(page.get_attribute("#roll", "data-playhead-x"))
    page.keyboard.press("Space")
    page.wait_for_function("Number(document.getElementById('time').dataset.position) > 0.4", timeout=10_000)
    assert float(page.get_attribute("#roll", "data-playhead-x")) > x0  # the playhead moves on the roll
    assert int(page.get_attribute("#time", "data-voices")) > 0
    page.keyboard.press("Space")
    assert page.text_content("#play") == "Play"

    # balance: all original, all notes
    page.check("input[name=listen][value=original]")
    assert page.evaluate(
        "[document.querySelector('audio').volume, window.explorer.transport.synth.out.gain.value]"
    ) == [1, 0]
    page.check("input[name=listen][value=midi]")
    assert page.evaluate(
        "[document.querySelector('audio').volume, window.explorer.transport.synth.out.gain.value]"
    ) == [0, 1]

    # loop a region by dragging on the time ruler, at half speed
    roll = page.locator("#roll").bounding_box()
    px = page.evaluate("window.explorer.roll.view.pxPerSec")
    x1 = roll["x"] + page.evaluate("window.explorer.roll.x(1)")
    page.mouse.move(x1, roll["y"] + 8)
    page.mouse.down()
    page.mouse.move(x1 + px * 0.6, roll["y"] + 8, steps=4)
    page.mouse.up()
    assert page.get_attribute("#loop", "aria-pressed") == "true"
    page.focus("#speed")
    page.keyboard.press("Home")  # 0.5x
    assert page.text_content("#speed-out") == "0.50×"
    page.click("#play")
    rate = page.evaluate(
        """() => new Promise((done) => {
             const t = window.explorer.transport, p0 = t.position, w0 = performance.now();
             setTimeout(() => done((t.position - p0) / ((performance.now() - w0) / 1000)), 500);
           })"""
    )
    assert 0.3 < rate < 0.7, rate
    positions = []
    for _ in range(12):
        page.wait_for_timeout(100)
        positions.append(page.evaluate("window.explorer.transport.position"))
    assert all(0.99 <= p <= 1.62 for p in positions), positions  # it stays in the loop
    page.click("#play")
    assert not errors, errors
    page.context.close()


def test_task_address_and_history_paging(browser: Any, web_tasks: WebTasks) -> None:
    svc = web_tasks.svc
    key = web_tasks.new_key("many tasks")
    assert web_tasks.files is not None
    for i in range(22):  # quick to fail in the worker: not audio
        web_tasks.submit(f"page{i}", key=key, audio_path=f"{web_tasks.files.url}/not-audio.mp3?{i}")
    page, errors = new_page(browser, svc, key)
    page.wait_for_function("document.getElementById('history').children.length === 20")
    assert page.text_content("#page-text") == "1–20 of 22"
    page.click("#older")
    page.wait_for_function("document.getElementById('page-text').textContent === '21–22 of 22'")
    assert page.locator("#history li").count() == 2 and page.is_disabled("#older")
    page.click("#newer")
    page.wait_for_function("document.getElementById('history').children.length === 20")
    page.context.close()

    # a task's address opens it, after sign-in
    done = web_tasks.done("main")
    ctx = browser.new_context()
    shared = ctx.new_page()
    shared.goto(f"{svc.url}/#/tasks/{done['task_id']}")
    sign_in(shared, web_tasks.key)
    shared.wait_for_selector("#result:not([hidden])")
    assert shared.text_content("#task-id") == done["task_id"]
    assert shared.get_attribute("#share-link", "href") == f"#/tasks/{done['task_id']}"
    ctx.close()
    assert not errors, errors


def test_drag_the_midi_out(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    data = page.evaluate(
        """() => {
             const dt = new DataTransfer(), ev = new DragEvent('dragstart', { dataTransfer: dt, bubbles: true });
             document.getElementById('drag-mid').dispatchEvent(ev);
             return dt.getData('DownloadURL');
           }"""
    )
    mime, name, url = data.split(":", 2)
    assert mime == "audio/midi" and name.endswith(".mid") and url.startswith("data:audio/midi;base64,")
    midi = mido.MidiFile(file=io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sum(1 for t in midi.tracks for m in t if m.type == "note_on" and m.velocity) == note_count(page)
    # the server's own files are still there, as the task wrote them
    assert httpx.get(page.get_attribute("#dl-mid", "href")).status_code == 200
    assert not errors, errors
    page.context.close()


def test_quantize_key_and_delete(browser: Any, web_tasks: WebTasks, tmp_path: Path) -> None:
    from audiogen import encode
    from web_support import arpeggio

    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    plain = page.evaluate("window.explorer.store.notes.map((n) => n.start)")
    with page.expect_response(lambda r: r.url.endswith("/notes")) as answer:
        page.select_option("#r-quantize", "1/8")
    assert answer.value.request.post_data_json["quantize"] == "1/8"
    page.wait_for_function(f"JSON.stringify(window.explorer.store.notes.map((n) => n.start)) !== '{plain}'")
    if answer.value.json()["key"]:
        assert page.text_content("#key-badge") == f"Key: {answer.value.json()['key']}"

    # delete a task and its files
    doomed = web_tasks.submit("doomed", upload=encode(tmp_path / "doomed.flac", arpeggio(1.5), kind="flac"))
    web_tasks.done("doomed")
    open_task(page, doomed)
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-task")
    page.wait_for_selector("#result", state="hidden")
    assert web_tasks.status(doomed)["files_deleted_at"]
    assert not errors, errors
    page.context.close()
