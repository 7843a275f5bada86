"""The beat grid end to end: rendered music at a known tempo (constant, then changing) is transcribed,
its grid written into the MIDI file as a tempo map, and the file's own beats and bar lines (read back
with pretty_midi) are checked beat by beat; silence and noise give a constant grid with no tempo."""

from __future__ import annotations

import csv
import io
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audiogen import SR, melody
from midiscribe import ModelOutputs, transcribe
from midiscribe.core.results import Note, Transcription
from midiscribe.formats.midi import MidiOptions, write_midi
from midiscribe.formats.notes_csv import read_notes_csv, write_notes_csv
from midiscribe.music.analysis import analyse
from midiscribe.music.beats import track_beats
from midiscribe.music.grid import BeatGrid, TimeSignature

pretty_midi = pytest.importorskip("pretty_midi")

FRAME_S = 256 / 22050

# I - IV - V - I in C, a bar each: bass on the downbeat, the chord on every beat, an eighth-note
# line on top (so there is more than one onset per beat, as in music)
CHORDS = [(48, (60, 64, 67)), (53, (60, 65, 69)), (55, (59, 62, 67)), (48, (60, 64, 67))]


def song(beats_s: list[float], per_bar: int = 4) -> list[tuple[float, float, int]]:
    """Events (start, length, pitch) on the given beat times."""
    events = []
    for i, (t, nxt) in enumerate(itertools.pairwise(beats_s)):
        bass, chord = CHORDS[(i // per_bar) % len(CHORDS)]
        length = nxt - t
        if i % per_bar == 0:
            events.append((t, length * per_bar * 0.9, bass - 12))
        events += [(t, length * 0.8, p) for p in chord]
        events.append((t + length / 2, length * 0.4, chord[-1] + 12))
    return events


def read_back(tr: Transcription, options: MidiOptions | None = None) -> Any:
    buf = io.BytesIO()
    write_midi(tr, buf, options)
    buf.seek(0)
    return pretty_midi.PrettyMIDI(buf)


def tracked(beats_s: list[float], total_s: float) -> tuple[Transcription, Any]:
    audio = melody(song(beats_s), total_s)
    tr = analyse(transcribe(audio, sample_rate=SR))
    return tr, read_back(tr)


def assert_on_beats(found: np.ndarray, true: list[float], tol_s: float = 0.035) -> None:
    """Every true beat has a file beat within ``tol_s``, and the file has no beat between them."""
    found = np.asarray(found)
    inside = found[(found > true[0] - tol_s) & (found < true[-1] + tol_s)]
    errors = [float(np.min(np.abs(inside - t))) for t in true]
    assert max(errors) < tol_s, [round(e, 3) for e in errors]
    assert inside.size == len(true), (inside.size, len(true))


def test_constant_tempo_render_gets_its_beats_and_bars() -> None:
    period = 60 / 100  # 100 bpm, 4/4, starting 0.4 s in, 7 bars
    true = [0.4 + i * period for i in range(29)]
    tr, midi = tracked(true, true[-1] + 1.0)
    assert tr.grid is not None and tr.grid.tempo_bpm == pytest.approx(100, rel=0.02)
    assert str(tr.grid.time_signature) == "4/4"
    assert_on_beats(midi.get_beats(), true[:-1])
    assert_on_beats(midi.get_downbeats(), true[:-1:4], tol_s=0.035)
    # the span before the first beat is one whole beat: tick 480 is the first beat of the music
    assert midi.tick_to_time(480) == pytest.approx(true[0], abs=0.015)
    # the notes keep their times in seconds: the same as in a file at a constant tempo
    flat = read_back(Transcription(tr.notes, tr.duration_s, tr.frame_period_s))
    starts = sorted(n.start for n in midi.instruments[0].notes)
    assert starts == pytest.approx(sorted(n.start for n in flat.instruments[0].notes), abs=0.0015)


def test_tempo_change_render_is_followed_beat_by_beat() -> None:
    # 90 bpm for 4 bars, then 120 bpm for 4 bars (a sudden change at a bar line)
    slow = [0.5 + i * 60 / 90 for i in range(16)]
    fast = [slow[-1] + 60 / 90 + i * 0.5 for i in range(17)]
    true = slow + fast
    tr, midi = tracked(true, true[-1] + 1.0)
    assert tr.grid is not None
    assert_on_beats(midi.get_beats(), true[:-1])
    _, tempi = midi.get_tempo_changes()
    assert any(abs(t - 90) < 3 for t in tempi) and any(abs(t - 120) < 4 for t in tempi), tempi


@pytest.mark.parametrize("kind", ["silence", "noise", "drone"])
def test_no_beat_gives_a_constant_grid_and_no_tempo(kind: str) -> None:
    rng = np.random.default_rng(1)
    n = 6 * SR
    if kind == "silence":
        audio = np.zeros(n, dtype=np.float32)
    elif kind == "noise":
        audio = (0.3 * rng.standard_normal(n)).astype(np.float32)
    else:  # one note held for the whole recording
        t = np.arange(n) / SR
        audio = (0.3 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, t / 0.3)).astype(np.float32)
    tr = analyse(transcribe(audio, sample_rate=SR), fallback_bpm=100.0)
    assert tr.grid is not None and tr.grid.tempo_bpm is None and tr.grid.reason
    midi = read_back(tr)
    _, tempi = midi.get_tempo_changes()
    assert tempi.tolist() == pytest.approx([100.0])


@pytest.mark.parametrize("per_s", [3.0, 8.0])
def test_onsets_at_random_times_have_no_tempo(per_s: float) -> None:
    """Speech-like input: notes that start at random times, a few a second, are no beat."""
    rng = np.random.default_rng(int(per_s))
    n = 2600  # 30 s of frames
    onset = np.full((n, 88), 0.02, np.float32)
    note = np.full((n, 88), 0.05, np.float32)
    for t in np.cumsum(rng.exponential(86 / per_s, size=int(per_s * 40))).astype(int):
        if 2 < t < n - 50:
            p = int(rng.integers(30, 70))
            onset[t - 1 : t + 2, p] = [0.4, 0.8, 0.4]
            note[t : t + int(rng.integers(5, 40)), p] = 0.8
    outputs = ModelOutputs(note=note, onset=onset, bend_bins=np.zeros((n, 88), np.int8), duration_s=n * FRAME_S)
    grid = track_beats(outputs)
    assert grid.tempo_bpm is None and grid.reason, grid


# --- the tempo map from a known grid (no audio) ---------------------------------------------


def notes_at(times: list[float]) -> tuple[Note, ...]:
    return tuple(Note(t, t + 0.1, 60, 0.5) for t in times)


@pytest.mark.parametrize(
    ("ts", "first_downbeat"), [(TimeSignature(4, 4), 0), (TimeSignature(3, 4), 2), (TimeSignature(6, 8), 1)]
)
def test_every_beat_on_a_midi_beat_every_downbeat_on_a_bar_line(ts: TimeSignature, first_downbeat: int) -> None:
    rng = np.random.default_rng(7)
    beats = list(0.37 + np.cumsum(rng.uniform(0.4, 0.7, 40)))
    grid = BeatGrid(tuple(beats), ts, first_downbeat=first_downbeat, tempo_bpm=100.0)
    tr = Transcription(notes_at(beats[::3]), beats[-1] + 2, 0.0116, grid=grid)
    midi = read_back(tr)
    file_beats = midi.get_beats()
    assert file_beats[0] == 0.0 and file_beats[1 : len(beats) + 1] == pytest.approx(beats, abs=2e-6)
    downs = midi.get_downbeats()
    assert downs[0] == 0.0  # the short first bar: the lead-in beat and the pickup
    assert downs[1 : 1 + len(grid.downbeats_s)] == pytest.approx(list(grid.downbeats_s)[: len(downs) - 1], abs=2e-6)
    starts = [n.start for n in midi.instruments[0].notes]
    assert starts == pytest.approx(beats[::3], abs=0.0011)  # a tick is under 1.1 ms at these tempos


def test_first_beat_at_zero_and_a_long_lead_in() -> None:
    grid = BeatGrid((0.0, 0.5, 1.0, 1.5, 2.0), TimeSignature(4, 4), tempo_bpm=120.0)
    midi = read_back(Transcription(notes_at([0.0, 1.0, 2.5]), 3.0, 0.0116, grid=grid))
    assert midi.get_beats()[:5] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert midi.get_downbeats()[:2] == pytest.approx([0.0, 2.0])
    # a first beat 40 s in: one beat would be slower than a MIDI tempo can be, so the lead-in is 3 beats
    late = BeatGrid((40.0, 40.5, 41.0, 41.5), TimeSignature(4, 4), tempo_bpm=120.0)
    midi = read_back(Transcription(notes_at([40.0, 41.5]), 42.0, 0.0116, grid=late))
    assert midi.get_beats()[3:6] == pytest.approx([40.0, 40.5, 41.0], abs=2e-6)
    assert midi.instruments[0].notes[0].start == pytest.approx(40.0, abs=0.002)


def test_csv_beat_columns_are_the_midi_files_bars_and_beats() -> None:
    # 3/4 at 0.5 s a beat from 1.0 s, the first downbeat on the third beat (a two-beat pickup)
    beats = tuple(1.0 + 0.5 * i for i in range(20))
    grid = BeatGrid(beats, TimeSignature(3, 4), first_downbeat=2, tempo_bpm=120.0)
    notes = (Note(0.0, 0.5, 60, 0.5), Note(1.0, 1.25, 62, 0.5), Note(2.0, 3.75, 64, 0.5), Note(3.5, 4.0, 65, 0.5))
    tr = Transcription(notes, 11.0, 0.0116, grid=grid)
    buf = io.StringIO()
    write_notes_csv(tr, buf, beat_columns=True)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    # bar 1 is the lead-in beat (0-1 s) and the pickup (1-2 s); bar 2 starts on the first downbeat
    assert [(r["start_beat"], r["end_beat"]) for r in rows] == [
        ("1.1.000", "1.1.500"),
        ("1.2.000", "1.2.500"),
        ("2.1.000", "3.1.500"),
        ("3.1.000", "3.2.000"),
    ]
    downs = read_back(tr).get_downbeats()
    assert downs[:3] == pytest.approx([0.0, 2.0, 3.5])  # the file's bar lines, as the CSV counts them
    assert [n.start_s for n in read_notes_csv(io.StringIO(buf.getvalue()))] == [0.0, 1.0, 2.0, 3.5]


def test_cli_writes_the_grid_and_beat_columns(tmp_path: Path) -> None:
    """`midiscribe transcribe --beat-columns`: the CSV (written without --notes-csv too) has bar.beat
    columns on the MIDI file's bars, and the MIDI file follows the music's beats."""
    from audiogen import encode

    true = [0.4 + i * 0.6 for i in range(21)]  # 100 bpm, 4/4
    audio = encode(tmp_path / "song.flac", melody(song(true), true[-1] + 1.0), sr=SR, kind="flac")
    exe = Path(sys.executable).with_name("midiscribe")
    out = subprocess.run(
        [str(exe), "transcribe", str(audio), "-o", str(tmp_path), "--beat-columns"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr + out.stdout
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "song.mid"))
    assert_on_beats(midi.get_beats(), true[:-1])
    with (tmp_path / "song.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["start_beat"].count(".") == 2 for r in rows)
    first = min(rows, key=lambda r: float(r["start_s"]))
    # the first chord, on the first downbeat: bar 2 (bar 1 is the lead-in beat before it), beat 1,
    # or a few ms early, at the very end of bar 1
    bar, beat, thousandths = (int(x) for x in first["start_beat"].split("."))
    assert ((bar, beat) == (2, 1) and thousandths < 50) or ((bar, beat) == (1, 1) and thousandths > 950), first
