"""The beat grid's time <-> position mapping, bars, and the key's signature and spelling."""

from __future__ import annotations

import pytest

from midiscribe.errors import OptionsError
from midiscribe.music.grid import BeatGrid, TimeSignature
from midiscribe.music.key import Key


def test_positions_interpolate_between_beats_and_extend_past_the_ends() -> None:
    grid = BeatGrid(beats_s=(1.0, 1.5, 2.5, 3.0), first_downbeat=1, time_signature=TimeSignature(3, 4))
    assert grid.position(1.0) == 0.0
    assert grid.position(2.0) == pytest.approx(1.5)
    assert grid.position(0.5) == pytest.approx(-1.0)  # the first interval, extended backwards
    assert grid.position(3.25) == pytest.approx(3.5)  # the last interval, extended forwards
    for t in (0.2, 1.0, 1.7, 2.5, 2.9, 4.0):
        assert grid.time(grid.position(t)) == pytest.approx(t)
    assert grid.downbeats_s == (1.5,)
    assert grid.bar_and_beat(1.5) == (1, 1.0)
    assert grid.bar_and_beat(1.0) == (0, 3.0)  # the pickup beat is beat 3 of bar 0
    assert grid.bar_and_beat(2.5) == (1, 2.0)


def test_constant_grid_and_validation() -> None:
    grid = BeatGrid.constant(120.0, 10.0, reason="no beat")
    assert grid.tempo_bpm is None and grid.reason == "no beat"
    assert grid.beats_s[:3] == (0.0, 0.5, 1.0) and grid.beats_s[-1] >= 10.0
    assert BeatGrid.constant(90.0, 4.0, detected=True).tempo_bpm == 90.0
    with pytest.raises(OptionsError):
        BeatGrid(beats_s=(1.0, 1.0, 2.0))
    with pytest.raises(OptionsError):
        BeatGrid(beats_s=(1.0,))
    with pytest.raises(OptionsError):
        TimeSignature(4, 3)


def test_compound_meters_count_dotted_beats() -> None:
    assert TimeSignature(6, 8).beats_per_bar == 2 and TimeSignature(6, 8).quarters_per_beat == 1.5
    assert TimeSignature(3, 8).beats_per_bar == 3
    assert TimeSignature(4, 2).quarters_per_beat == 2.0
    assert str(TimeSignature(12, 8)) == "12/8"


@pytest.mark.parametrize(
    ("key", "fifths", "name"),
    [
        (Key(0), 0, "C major"),
        (Key(9, "minor"), 0, "A minor"),
        (Key(3), -3, "Eb major"),
        (Key(6, "minor"), 3, "F# minor"),
        (Key(1), -5, "Db major"),
        (Key(2, "minor"), -1, "D minor"),
    ],
)
def test_key_signature_and_spelling(key: Key, fifths: int, name: str) -> None:
    assert key.fifths == fifths
    assert key.name == name
