"""core/bends.py: which pitch bends are real, decided once for the roll, the CSV, the MIDI and the WAV."""

from __future__ import annotations

import io

import mido

from midiscribe.core.bends import clean_bends, written_bends
from midiscribe.core.results import Note, Transcription
from midiscribe.formats.midi import MidiOptions, write_midi
from midiscribe.formats.notes_csv import read_notes_csv, write_notes_csv


def test_a_steady_note_that_flickers_by_one_bin_is_not_bent() -> None:
    assert clean_bends([0] * 30) == ()
    assert clean_bends([-1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0]) == ()  # attack and tail flicker
    assert clean_bends([0, 0, 0, 3, 0, 0, 0]) == ()  # one wild frame
    assert clean_bends([]) == ()


def test_a_held_bend_keeps_its_filtered_contour() -> None:
    bins = [0] * 10 + [1] * 10 + [2] * 10 + [-1] * 10
    assert clean_bends(bins) == (0,) * 10 + (33,) * 10 + (67,) * 10 + (-33,) * 10
    vibrato = [0, 1, 2, 2, 1, 0, -1, -2, -2, -1] * 4
    assert any(abs(c) >= 67 for c in clean_bends(vibrato))


def transcription(*notes: Note) -> Transcription:
    return Transcription(notes=notes, duration_s=3.0, frame_period_s=0.0116)


def bent_in_midi(tr: Transcription, options: MidiOptions) -> int:
    buf = io.BytesIO()
    write_midi(tr, buf, options)
    midi = mido.MidiFile(file=io.BytesIO(buf.getvalue()))
    return sum(1 for t in midi.tracks for m in t if m.type == "pitchwheel" and m.pitch != 0)


def test_csv_and_midi_carry_the_same_bends() -> None:
    lone = Note(2.0, 2.5, 67, 0.5, bends_cents=(0, 67, 67, 67))
    a = Note(0.0, 1.0, 60, 0.5, bends_cents=(0, 100, 100))
    b = Note(0.5, 1.5, 64, 0.5, bends_cents=(0, -100, -100))  # overlaps a: one channel cannot bend both
    tr = transcription(a, b, lone)
    for multiple in (False, True):
        settled = written_bends(tr, multiple_pitch_bends=multiple)
        buf = io.StringIO()
        write_notes_csv(settled, buf)
        csv_bent = sum(1 for n in read_notes_csv(io.StringIO(buf.getvalue())) if n.bends_cents)
        assert csv_bent == (3 if multiple else 1)
        assert bent_in_midi(settled, MidiOptions(multiple_pitch_bends=multiple)) > 0
        # the MIDI writer applies the same rule on its own: writing settled notes changes nothing
        assert bent_in_midi(settled, MidiOptions(multiple_pitch_bends=multiple)) == bent_in_midi(
            tr, MidiOptions(multiple_pitch_bends=multiple)
        )
    assert written_bends(transcription(lone), multiple_pitch_bends=False) == transcription(lone)
