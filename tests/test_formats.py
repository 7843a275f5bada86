"""Writers: MIDI (read back with pretty_midi), notes CSV, and sonified WAV."""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import wave
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest

from midiscribe.core.results import Note, Transcription
from midiscribe.errors import MidiscribeError, OptionsError
from midiscribe.formats.midi import MidiOptions, to_midi, write_midi
from midiscribe.formats.notes_csv import HEADER, read_notes_csv, write_notes_csv
from midiscribe.formats.render import DEFAULT_SOUNDFONTS, SOUNDFONT_ENV, TAIL_S, RenderOptions, render_wav

pretty_midi = pytest.importorskip("pretty_midi")

FRAME_S = 256 / 22050  # basic-pitch's frame period, ~11.6 ms


@pytest.fixture(autouse=True)
def _no_soundfont_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOUNDFONT_ENV, raising=False)


def transcription(*notes: Note, duration_s: float = 2.0) -> Transcription:
    return Transcription(notes=notes, duration_s=duration_s, frame_period_s=FRAME_S)


def read_back(t: Transcription, options: MidiOptions | None = None) -> Any:  # a pretty_midi.PrettyMIDI
    buffer = io.BytesIO()
    write_midi(t, buffer, options)
    buffer.seek(0)
    return pretty_midi.PrettyMIDI(buffer)


# --- MIDI --------------------------------------------------------------------------------


def test_midi_round_trip_through_pretty_midi() -> None:
    notes = (
        Note(0.0, 0.5, 60, 0.5),
        Note(0.2537, 1.0123, 64, 0.9),
        Note(1.5, 1.7, 67, 0.01),
        Note(589.9871, 590.4321, 72, 1.0),
    )
    midi = read_back(transcription(*notes, duration_s=591.0), MidiOptions(program=24, tempo_bpm=100.0))

    assert len(midi.instruments) == 1
    assert midi.instruments[0].program == 24
    _, tempi = midi.get_tempo_changes()
    assert tempi.tolist() == pytest.approx([100.0])
    got = sorted(midi.instruments[0].notes, key=lambda n: n.start)
    assert [n.pitch for n in got] == [60, 64, 67, 72]
    assert [n.velocity for n in got] == [note.velocity for note in notes] == [64, 114, 1, 127]
    for want, have in zip(notes, got, strict=True):
        assert have.start == pytest.approx(want.start_s, abs=1e-3)
        assert have.end == pytest.approx(want.end_s, abs=1e-3)


def test_lone_bent_note_keeps_its_bends_and_resets_at_the_end() -> None:
    note = Note(0.5, 1.0, 69, 0.8, bends_cents=(0, 50, 100, 100, -100, 300))
    instrument = read_back(transcription(note)).instruments[0]

    # 0 at the start is the wheel's rest position, repeats are skipped, 300 cents clips.
    assert [b.pitch for b in instrument.pitch_bends] == [2048, 4096, -4096, 8191, 0]
    times = [b.time for b in instrument.pitch_bends]
    assert times[:4] == pytest.approx([0.5 + k * FRAME_S for k in (1, 2, 4, 5)], abs=1e-3)
    assert times[4] == pytest.approx(1.0, abs=1e-3)


def overlapping_bent_notes() -> Transcription:
    return transcription(
        Note(0.0, 1.0, 60, 0.5, bends_cents=(0, 40, 40)),
        Note(0.5, 1.5, 64, 0.5, bends_cents=(0, -40, -40)),
        Note(1.6, 2.0, 67, 0.5, bends_cents=(20, 20)),
    )


def test_overlapping_notes_lose_their_bends_on_one_channel() -> None:
    midi = read_back(overlapping_bent_notes(), MidiOptions(multiple_pitch_bends=False))

    assert len(midi.instruments) == 1
    assert [b.pitch for b in midi.instruments[0].pitch_bends] == [819, 0]  # only the lone G4's


def test_multiple_pitch_bends_keeps_them_with_one_instrument_per_pitch() -> None:
    midi = read_back(overlapping_bent_notes(), MidiOptions(program=40, multiple_pitch_bends=True))

    by_pitch = {inst.notes[0].pitch: inst for inst in midi.instruments}
    assert sorted(by_pitch) == [60, 64, 67]
    assert all(inst.program == 40 and len(inst.notes) == 1 for inst in midi.instruments)
    assert [b.pitch for b in by_pitch[60].pitch_bends] == [1638, 0]
    assert [b.pitch for b in by_pitch[64].pitch_bends] == [-1638, 0]
    channels = {
        m.channel
        for track in to_midi(overlapping_bent_notes(), MidiOptions(multiple_pitch_bends=True)).tracks
        for m in track
        if not m.is_meta
    }
    assert len(channels) == 3 and 9 not in channels


def test_more_pitches_than_channels_share_channels_but_never_drums() -> None:
    t = transcription(*(Note(0.1 * i, 0.1 * i + 0.05, 40 + i, 0.5) for i in range(20)))
    midi = to_midi(t, MidiOptions(multiple_pitch_bends=True))
    channels = {m.channel for track in midi.tracks for m in track if not m.is_meta}
    assert channels == set(range(16)) - {9}
    assert len(read_back(t, MidiOptions(multiple_pitch_bends=True)).instruments) == 20


def test_zero_length_and_same_pitch_overlaps_leave_no_hanging_notes() -> None:
    t = transcription(
        Note(0.3, 0.3, 60, 0.5),  # zero length
        Note(0.5, 1.5, 62, 0.5),
        Note(1.0, 2.0, 62, 0.5),  # starts while the previous D4 still sounds
        Note(1.0, 1.2, 62, 0.5),  # same pitch, same start: merged
    )
    sounding: dict[int, int] = {}
    for message in mido.merge_tracks(to_midi(t).tracks):
        if message.type == "note_on":
            sounding[message.note] = sounding.get(message.note, 0) + 1
            assert sounding[message.note] == 1
        elif message.type == "note_off":
            sounding[message.note] -= 1
    assert set(sounding.values()) == {0}
    notes = sorted(read_back(t).instruments[0].notes, key=lambda n: n.start)
    assert [(n.pitch, round(n.start, 3), round(n.end, 3)) for n in notes] == [
        (60, 0.3, 0.301),
        (62, 0.5, 1.0),
        (62, 1.0, 2.0),
    ]


def test_write_midi_to_a_path_matches_a_file_object(tmp_path: Path) -> None:
    t = overlapping_bent_notes()
    buffer = io.BytesIO()
    write_midi(t, buffer)
    write_midi(t, tmp_path / "out.mid")
    assert (tmp_path / "out.mid").read_bytes() == buffer.getvalue()


def test_no_notes_still_make_a_valid_file() -> None:
    assert read_back(transcription()).instruments == []


@pytest.mark.parametrize("kwargs", [{"program": 128}, {"program": -1}, {"tempo_bpm": 5.0}, {"tempo_bpm": 401}])
def test_midi_options_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(OptionsError):
        MidiOptions(**kwargs)  # type: ignore[arg-type]


# --- CSV ---------------------------------------------------------------------------------


def unsorted_notes() -> Transcription:
    return transcription(
        Note(1.0, 1.5, 64, 0.5, bends_cents=(0, 0, 33, 33)),
        Note(0.25, 0.75, 67, 0.123456),
        Note(0.25, 0.5, 60, 1.0, bends_cents=(-12,)),
    )


def test_csv_has_the_header_and_one_sorted_row_per_note_of_six_fields() -> None:
    buffer = io.StringIO(newline="")
    write_notes_csv(unsorted_notes(), buffer)
    text = buffer.getvalue()

    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert text.splitlines()[0] == "start_s,end_s,pitch_midi,velocity,amplitude,pitch_bends"
    assert tuple(rows[0]) == HEADER
    assert len(rows) == 4 and all(len(row) == 6 for row in rows)
    assert [(row[0], row[2]) for row in rows[1:]] == [("0.2500", "60"), ("0.2500", "67"), ("1.0000", "64")]
    assert text.splitlines()[1:] == [
        '0.2500,0.5000,60,127,1.0000,"-12"',
        '0.2500,0.7500,67,16,0.1235,""',
        '1.0000,1.5000,64,64,0.5000,"0 0 33 33"',
    ]


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    write_notes_csv(unsorted_notes(), path)
    back = read_notes_csv(path)

    want = sorted(unsorted_notes().notes, key=lambda n: (n.start_s, n.pitch))
    assert [(n.start_s, n.end_s, n.pitch, n.bends_cents) for n in back] == [
        (n.start_s, n.end_s, n.pitch, n.bends_cents) for n in want
    ]
    assert [n.amplitude for n in back] == pytest.approx([n.amplitude for n in want], abs=5e-5)


def test_reading_a_csv_that_is_not_ours_fails() -> None:
    with pytest.raises(MidiscribeError):
        read_notes_csv(io.StringIO("a,b\n1,2\n"))


# --- WAV ---------------------------------------------------------------------------------


def render(t: Transcription, **kwargs: object) -> tuple[np.ndarray, int]:
    buffer = io.BytesIO()
    render_wav(t, buffer, **kwargs)  # type: ignore[arg-type]
    buffer.seek(0)
    with wave.open(buffer) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        frames = wav.readframes(wav.getnframes())
        return np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768, wav.getframerate()


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def test_wav_length_level_and_silence_outside_notes() -> None:
    t = transcription(Note(0.5, 1.0, 69, 0.8), Note(1.2, 1.6, 72, 0.5), duration_s=2.0)
    x, sr = render(t, synth="builtin", sample_rate=22050)

    assert sr == 22050
    assert len(x) == round((1.6 + TAIL_S) * sr)
    assert np.abs(x).max() == pytest.approx(10 ** (-1 / 20), abs=1e-3)  # -1 dBFS
    assert np.sqrt(np.mean(x[int(0.6 * sr) : int(0.9 * sr)] ** 2)) > 0.05
    assert not x[: int(0.5 * sr)].any() and not x[int(1.7 * sr) :].any()


def test_no_notes_give_a_silent_wav_of_the_duration(tmp_path: Path) -> None:
    render_wav(transcription(duration_s=1.5), tmp_path / "silence.wav", synth="builtin")
    with wave.open(str(tmp_path / "silence.wav")) as wav:
        assert wav.getnframes() == round(1.5 * 44100)
        assert not any(wav.readframes(wav.getnframes()))


def test_builtin_synth_has_the_fundamental_and_harmonics() -> None:
    x, sr = render(transcription(Note(0.0, 1.0, 69, 0.8)), synth="builtin")
    steady = x[int(0.1 * sr) : int(0.9 * sr)]
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    hz = np.fft.rfftfreq(len(steady), 1 / sr)

    def level(f: float) -> float:
        return float(spectrum[np.abs(hz - f) < 5].max())

    floor = float(np.median(spectrum))
    assert peak_hz(steady, sr) == pytest.approx(440, abs=2)
    for harmonic in (880, 1320, 1760):
        assert level(harmonic) > 100 * floor
    assert level(660) < level(1320) / 100  # nothing between harmonics


def test_builtin_synth_follows_a_bend() -> None:
    frames = round(1.0 / FRAME_S)
    bends = tuple(0 if k < 40 else min(200, (k - 40) * 20) for k in range(frames))
    x, sr = render(transcription(Note(0.0, 1.0, 69, 0.8, bends_cents=bends)), synth="builtin")

    before, after = peak_hz(x[: int(0.4 * sr)], sr), peak_hz(x[int(0.65 * sr) : int(1.0 * sr)], sr)
    assert before == pytest.approx(440, abs=3)
    assert after == pytest.approx(440 * 2 ** (2 / 12), abs=4)


def test_render_options_are_validated() -> None:
    with pytest.raises(OptionsError):
        RenderOptions(sample_rate=100)
    with pytest.raises(OptionsError):
        RenderOptions(synth="piano")  # type: ignore[arg-type]


def test_a_named_soundfont_that_does_not_exist_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    t = transcription(Note(0.0, 0.2, 60, 0.5))
    with pytest.raises(OptionsError, match="soundfont not found"):
        render_wav(t, io.BytesIO(), soundfont="/nonexistent/piano.sf2")
    monkeypatch.setenv(SOUNDFONT_ENV, "/nonexistent/piano.sf2")
    with pytest.raises(OptionsError, match="soundfont not found"):
        render_wav(t, io.BytesIO())


def test_without_fluidsynth_falls_back_to_the_builtin_synth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # import fluidsynth -> ImportError
    soundfont = tmp_path / "any.sf2"
    soundfont.write_bytes(b"never read")
    t = transcription(Note(0.0, 0.5, 69, 0.8))

    with caplog.at_level(logging.WARNING, logger="midiscribe"):
        x, sr = render(t, soundfont=soundfont)
    assert "FluidSynth is not available" in caplog.text
    assert peak_hz(x[: int(0.5 * sr)], sr) == pytest.approx(440, abs=2)
    with pytest.raises(OptionsError, match="pip install"):
        render(t, soundfont=soundfont, synth="soundfont")


def available_soundfont() -> str:
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"FluidSynth not usable ({exc}); apt-get install libfluidsynth3")
    found = os.environ.get(SOUNDFONT_ENV) or next((str(p) for p in DEFAULT_SOUNDFONTS if p.is_file()), None)
    if found is None:
        pytest.skip("no .sf2 SoundFont found; apt-get install timgm6mb-soundfont")
    return found


def test_soundfont_rendering_plays_the_note() -> None:
    soundfont = available_soundfont()
    t = transcription(Note(0.1, 1.1, 69, 0.8), duration_s=1.0)
    x, sr = render(t, soundfont=soundfont, synth="soundfont")

    assert len(x) == round((1.1 + TAIL_S) * sr)
    sounding = x[int(0.2 * sr) : int(1.0 * sr)]
    assert np.sqrt(np.mean(sounding**2)) > 0.05
    harmonic = peak_hz(sounding, sr) / 440  # a SoundFont's strongest partial may be the 2nd
    assert harmonic == pytest.approx(round(harmonic), abs=0.03) and 1 <= round(harmonic) <= 3


def test_a_soundfont_that_does_not_load_is_an_error(tmp_path: Path) -> None:
    available_soundfont()
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"not a soundfont")
    with pytest.raises(OptionsError, match="could not load"):
        render_wav(transcription(Note(0.0, 0.2, 60, 0.5)), io.BytesIO(), soundfont=broken)
