"""The Explorer's bar/beat ruler: a recording with a beat gets bar numbers and bar and beat lines on the
piano roll where the MIDI file has them, and the tempo and meter beside the key; one without a beat keeps
the ruler in seconds."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pytest

from audiogen import encode, melody
from test_beats import song
from test_web_features import download
from web_support import WebTasks, new_page, open_task

pretty_midi = pytest.importorskip("pretty_midi")

BEATS = [0.5 + i * 0.6 for i in range(21)]  # 100 bpm, 4/4, five bars

# Where the roll draws its bar lines: the grid's downbeats through the roll's own geometry
BAR_XS = """() => {
  const { roll } = window.explorer, g = roll.grid;
  return g.downbeats_s.filter((t) => roll.x(t) >= 44 && roll.x(t) < roll.width).map((t) => Math.round(roll.x(t)));
}"""
# 1 where a column of the canvas (just below the ruler) has the strong grid colour, per CSS pixel
STRONG_COLUMNS = """() => {
  const { roll } = window.explorer, c = roll.c, g = c.getContext('2d'), dpr = window.devicePixelRatio || 1;
  const css = getComputedStyle(c).getPropertyValue('--roll-grid-strong').trim();
  const probe = document.createElement('canvas').getContext('2d');
  probe.fillStyle = css; probe.fillRect(0, 0, 1, 1);
  const [r, gg, b] = probe.getImageData(0, 0, 1, 1).data;
  const row = g.getImageData(0, Math.round(3 * dpr), c.width, 1).data;  // inside the ruler, above the notes
  const out = [];
  for (let x = 0; x < c.width; x++) {
    const i = 4 * x;
    const near = Math.abs(row[i] - r) < 8 && Math.abs(row[i + 1] - gg) < 8 && Math.abs(row[i + 2] - b) < 8;
    if (near) out.push(Math.round(x / dpr));
  }
  return out;
}"""


def test_bar_and_beat_ruler(browser: Any, web_tasks: WebTasks, tmp_path_factory: pytest.TempPathFactory) -> None:
    samples = melody(song(BEATS), BEATS[-1] + 1.0, sr=44_100)
    audio = encode(tmp_path_factory.mktemp("beats") / "song.flac", samples, sr=44_100, kind="flac")
    web_tasks.submit("beats", upload=audio, sonify_midi=False)
    task = web_tasks.done("beats")
    assert task["status"] == "completed" and task["result"]["tempo_bpm"] is not None, task

    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    page.wait_for_selector("#roll[data-ruler='bars']")
    assert page.text_content("#tempo-badge") == f"{round(task['result']['tempo_bpm'])} bpm · 4/4"
    assert page.is_visible("#tempo-badge")
    page.evaluate("window.explorer.roll.setView(0, 60)")  # 36 px a beat: bar numbers and beat lines
    page.wait_for_function("window.explorer.roll.c.dataset.barLabels")
    labels = [int(x) for x in page.evaluate("window.explorer.roll.c.dataset.barLabels").split(",")]
    grid = page.evaluate("window.explorer.roll.grid")
    assert labels[:2] == [1, grid["first_bar"]] and labels == sorted(labels), labels
    # the bar lines are drawn where the grid's downbeats are, and the downbeats are where the music's are
    page.wait_for_timeout(100)  # one animation frame
    drawn = page.evaluate(STRONG_COLUMNS)
    for x in page.evaluate(BAR_XS):
        assert any(abs(x - d) <= 1 for d in drawn), (x, drawn)
    assert all(min(abs(t - b) for t in grid["downbeats_s"]) < 0.035 for b in BEATS[:-1:4])

    # the MIDI file written in the browser from the notes shown has the server file's tempo map and bars
    shown = pretty_midi.PrettyMIDI(io.BytesIO(download(page, "#dl-shown-mid")))
    server = pretty_midi.PrettyMIDI(io.BytesIO(httpx.get(task["result"]["midi_file_path"]).content))
    n = min(len(shown.get_beats()), len(server.get_beats()))
    assert n >= len(BEATS) and np.allclose(shown.get_beats()[:n], server.get_beats()[:n], atol=0.001)
    assert np.allclose(shown.get_downbeats()[:5], server.get_downbeats()[:5], atol=0.001)
    starts = sorted(x.start for x in shown.instruments[0].notes)
    assert np.allclose(starts, sorted(x.start for x in server.instruments[0].notes), atol=0.0015)
    assert not errors, errors
    page.context.close()


def test_no_beat_keeps_seconds(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("minlen15")  # 2.5 s, a handful of notes: no steady beat
    assert task["result"]["tempo_bpm"] is None
    page, errors = new_page(browser, web_tasks.svc, web_tasks.key)
    open_task(page, task["task_id"])
    page.wait_for_selector("#roll[data-ruler='seconds']")
    assert page.is_hidden("#tempo-badge")
    assert not errors, errors
    page.context.close()
