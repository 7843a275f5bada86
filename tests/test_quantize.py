"""Quantization in beat positions on a known grid, tempo changes included; merging; strength; ends."""

from __future__ import annotations

import pytest

from midiscribe import Note, Transcription
from midiscribe.errors import OptionsError
from midiscribe.music.grid import BeatGrid, TimeSignature
from midiscribe.music.quantize import QUANTIZE_VALUES, QuantizeOptions, quantize, step_quarters

# 4 beats at 120 bpm (0.5 s), then 4 at 60 bpm (1.0 s), then 4 at 90 bpm: a tempo change in each bar.
BEATS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 6.6667, 7.3333, 8.0, 8.6667)
GRID = BeatGrid(BEATS, TimeSignature(4, 4), tempo_bpm=90.0)


def tr(*notes: tuple[float, float, int], grid: BeatGrid | None = GRID) -> Transcription:
    return Transcription(
        notes=tuple(Note(s, e, p, 0.5) for s, e, p in notes), duration_s=9.0, frame_period_s=0.0116, grid=grid
    )


def at(position: float, grid: BeatGrid = GRID) -> float:
    return grid.time(position)


def test_round_trip_through_a_tempo_change() -> None:
    # sixteenth positions, played up to a 32nd late or early, in all three tempi
    targets = [0.25, 1.0, 3.75, 4.5, 5.25, 8.0, 9.75]
    played = [
        (at(p + d), at(p + d + 0.5), 60 + i)
        for i, (p, d) in enumerate(zip(targets, [0.1, -0.1, 0.12, -0.12, 0.05, 0.1, -0.1], strict=True))
    ]
    out = quantize(tr(*played), QuantizeOptions("1/16"))
    for note, target in zip(out.notes, targets, strict=True):
        assert GRID.position(note.start_s) == pytest.approx(target, abs=1e-6)
        # the length in beats is kept (a quarter note stays a quarter note at every tempo)
        assert GRID.position(note.end_s) - GRID.position(note.start_s) == pytest.approx(0.5, abs=1e-6)


def test_not_rounded_in_seconds() -> None:
    # at 60 bpm a sixteenth is 0.25 s: 2.26 s lies on no 120-bpm sixteenth line but must go to beat 4.25
    out = quantize(tr((2.26, 2.6, 60)), QuantizeOptions("1/16"))
    assert out.notes[0].start_s == pytest.approx(2.25, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "quarters"), [("1/4", 1.0), ("1/8", 0.5), ("1/32", 0.125), ("1/8t", 1 / 3), ("1/16t", 1 / 6)]
)
def test_note_values(value: str, quarters: float) -> None:
    assert step_quarters(value) == pytest.approx(quarters)
    position = 2 + quarters * 1.4  # nearer the first grid line after beat 2
    out = quantize(tr((at(position), at(position + 1), 60)), QuantizeOptions(value))
    assert GRID.position(out.notes[0].start_s) == pytest.approx(2 + quarters, abs=1e-6)


def test_compound_meter_uses_quarter_notes_not_beats() -> None:
    # 6/8: a grid beat is a dotted quarter (1.5 quarters); a 1/8 grid line every third of a beat
    grid = BeatGrid.constant(60.0, 10.0, time_signature=TimeSignature(6, 8))
    out = quantize(tr((1.30, 1.9, 60), grid=grid), QuantizeOptions("1/8"))
    assert grid.position(out.notes[0].start_s) == pytest.approx(1 + 1 / 3, abs=1e-6)


def test_grid_restarts_at_each_bar_line() -> None:
    # 5/8 (not compound): a 1/4 grid still has a line on the second downbeat (beat 5)
    grid = BeatGrid.constant(120.0, 10.0, time_signature=TimeSignature(5, 8))
    out = quantize(tr((grid.time(4.9), grid.time(5.5), 60), grid=grid), QuantizeOptions("1/4"))
    assert grid.position(out.notes[0].start_s) == pytest.approx(5.0, abs=1e-6)


def test_strength_moves_part_of_the_way() -> None:
    start = at(1.2)
    half = quantize(tr((start, at(2.2), 60)), QuantizeOptions("1/4", strength=50))
    assert GRID.position(half.notes[0].start_s) == pytest.approx(1.1, abs=1e-6)
    none = quantize(tr((start, at(2.2), 60)), QuantizeOptions("1/4", strength=0))
    assert none.notes[0].start_s == start


def test_ends_snap_and_never_collapse() -> None:
    out = quantize(tr((at(1.05), at(1.93), 60), (at(3.0), at(3.05), 62)), QuantizeOptions("1/4", ends=True))
    a, b = out.notes
    assert GRID.position(a.end_s) == pytest.approx(2.0, abs=1e-6)
    # the short note snapped onto its own start: it keeps one grid step instead of zero length
    assert GRID.position(b.end_s) - GRID.position(b.start_s) == pytest.approx(1.0, abs=1e-6)
    assert all(n.end_s > n.start_s for n in out.notes)


def test_collapsing_notes_merge() -> None:
    # a repeated note played twice within a sixteenth: one note, not two on top of each other
    out = quantize(tr((at(1.0), at(1.3), 60), (at(1.08), at(1.9), 60), (at(1.0), at(1.5), 64)), QuantizeOptions("1/8"))
    assert [(n.pitch, round(GRID.position(n.start_s), 6)) for n in out.notes] == [(60, 1.0), (64, 1.0)]
    assert GRID.position(out.notes[0].end_s) == pytest.approx(1.82, abs=1e-3)  # the longer one's end


def test_off_is_the_identity_and_values_are_checked() -> None:
    t = tr((0.31, 0.7, 60))
    assert quantize(t, QuantizeOptions()) is t
    assert QUANTIZE_VALUES == ("off", "1/4", "1/8", "1/16", "1/32", "1/8t", "1/16t")
    with pytest.raises(OptionsError, match="1/16t"):
        QuantizeOptions("1/12")
    for strength in (-1, 101, float("nan"), True):
        with pytest.raises(OptionsError, match="quantize_strength"):
            QuantizeOptions("1/8", strength=strength)


def test_without_a_grid_uses_a_constant_one() -> None:
    out = quantize(tr((0.26, 0.5, 60), grid=None), QuantizeOptions("1/8"))
    assert out.notes[0].start_s == pytest.approx(0.25) and out.grid is not None
