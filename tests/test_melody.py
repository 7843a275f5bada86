"""core.melody.monophonic on small synthetic pitch tracks whose right answer is obvious."""

from __future__ import annotations

import numpy as np
import pytest

from midiscribe.core.melody import F0Track, MonoOptions, monophonic
from midiscribe.core.results import Note, NoteOptions
from midiscribe.errors import OptionsError

PERIOD = 0.01


def track(segments: list[tuple[float, float, float, float]], total_s: float) -> F0Track:
    """(start_s, end_s, pitch at start, pitch at end) spans of a pitch track; silence elsewhere."""
    n = round(total_s / PERIOD)
    t = np.arange(n) * PERIOD
    pitch = np.zeros(n, dtype=np.float32)
    voicing = np.zeros(n, dtype=np.float32)
    for a, b, p0, p1 in segments:
        span = (t >= a) & (t < b)
        pitch[span] = p0 + (p1 - p0) * (t[span] - a) / (b - a)
        voicing[span] = 0.9
    return F0Track(pitch_midi=pitch, voicing=voicing, power=voicing.copy(), frame_period_s=PERIOD)


def test_harmonics_and_ghosts_go_and_overlaps_end_at_the_next_onset() -> None:
    tr = track([(0.0, 0.5, 60, 60), (0.5, 1.0, 64, 64)], 1.2)
    candidates = (
        Note(0.0, 0.55, 60, 0.8),
        Note(0.02, 0.5, 72, 0.5),  # the octave above: the track never goes there
        Note(0.5, 1.0, 64, 0.8),
        Note(0.6, 0.9, 71, 0.4),  # a harmonic
    )
    notes = monophonic(candidates, tr, NoteOptions())
    assert [(n.start_s, n.end_s, n.pitch) for n in notes] == [(0.0, 0.5, 60), (0.5, 1.0, 64)]
    assert all(n.confidence is not None and 0.85 <= n.confidence <= 0.9 for n in notes)
    assert not any(n.bends_cents for n in notes)  # in tune: no bends at all


def test_two_onsets_at_once_keep_the_one_the_track_follows() -> None:
    tr = track([(0.0, 0.6, 62, 62)], 0.8)
    notes = monophonic((Note(0.0, 0.6, 61, 0.9), Note(0.03, 0.6, 62, 0.7)), tr, NoteOptions())
    assert [(n.pitch, n.start_s) for n in notes] == [(62, 0.03)]


def test_a_slide_is_one_bent_note() -> None:
    # 60 held, a slide up a whole tone over 0.3 s, 62 held; the model wrote the slide's middle as 61
    tr = track([(0.0, 0.5, 60, 60), (0.5, 0.8, 60, 62), (0.8, 1.4, 62, 62)], 1.6)
    candidates = (Note(0.0, 0.6, 60, 0.8), Note(0.6, 0.72, 61, 0.6), Note(0.72, 1.4, 62, 0.8))
    notes = monophonic(candidates, tr, NoteOptions())
    assert [(n.start_s, n.end_s, n.pitch) for n in notes] == [(0.0, 0.6, 60), (0.6, 1.4, 62)]
    bent = notes[1].bends_cents
    assert len(bent) == 80 and bent[0] <= -100 and bent[-1] == 0  # rises from below into 62


def test_a_chromatic_run_is_not_a_slide() -> None:
    tr = track([(0.0, 0.12, 60, 60), (0.12, 0.24, 61, 61), (0.24, 0.5, 62, 62)], 0.6)
    candidates = (Note(0.0, 0.12, 60, 0.8), Note(0.12, 0.24, 61, 0.8), Note(0.24, 0.5, 62, 0.8))
    assert [n.pitch for n in monophonic(candidates, tr, NoteOptions())] == [60, 61, 62]


def test_vibrato_is_kept_as_bends_and_bends_can_be_off() -> None:
    n = 100
    t = np.arange(n) * PERIOD
    pitch = (67 + 0.4 * np.sin(2 * np.pi * 5.5 * t)).astype(np.float32)
    tr = F0Track(pitch, np.full(n, 0.95, np.float32), np.ones(n, np.float32), PERIOD)
    (note,) = monophonic((Note(0.0, 1.0, 67, 0.7),), tr, NoteOptions())
    assert note.pitch == 67 and max(note.bends_cents) >= 30 and min(note.bends_cents) <= -30
    (plain,) = monophonic((Note(0.0, 1.0, 67, 0.7),), tr, NoteOptions(pitch_bends=False))
    assert plain.bends_cents == ()


def test_options_are_checked() -> None:
    with pytest.raises(OptionsError):
        MonoOptions(agreement=1.5)
