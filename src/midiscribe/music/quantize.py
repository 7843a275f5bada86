"""Quantization: note starts (and optionally ends) pulled toward a note-value grid laid on the beat grid.

Positions are beat positions of the music's own grid (``BeatGrid.position`` / ``BeatGrid.time``), so a
rubato or a tempo change moves the grid with the music: nothing is rounded in seconds at a fixed tempo.
Note values are relative to the quarter note and converted with ``TimeSignature.quarters_per_beat``
(a 6/8 beat is a dotted quarter, a 2/2 beat a half), and the grid restarts at every bar line, so a 1/4
grid in 3/8 or 5/8 still puts a line on each downbeat.

``strength`` (0-100) moves each time that share of the way to its grid line (100: onto it, 0: not at
all), like a DAW's quantize strength. With ``ends`` the note ends are snapped too; without, a note keeps
its length in beats. Two notes of one pitch that land on the same start are merged into one (the longer
end, the louder amplitude); no note is left with zero length.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from midiscribe.core.results import Note, Transcription
from midiscribe.errors import OptionsError
from midiscribe.music.grid import BeatGrid

__all__ = ["QUANTIZE_VALUES", "QuantizeOptions", "quantize", "step_quarters"]

log = logging.getLogger("midiscribe.music")

# Grid note values, in quarter notes: "1/8t" is an eighth-note triplet (three per quarter).
_STEPS_QUARTERS = {
    "1/4": 1.0,
    "1/8": 0.5,
    "1/16": 0.25,
    "1/32": 0.125,
    "1/8t": 1.0 / 3.0,
    "1/16t": 1.0 / 6.0,
}
QUANTIZE_VALUES = ("off", *_STEPS_QUARTERS)
"""Every value ``quantize`` accepts, in the order documented."""
_EPS = 1e-9


def step_quarters(value: str) -> float:
    """Length of one grid step of ``value`` (e.g. ``"1/16"``) in quarter notes."""
    try:
        return _STEPS_QUARTERS[value]
    except KeyError:
        raise OptionsError(f"quantize must be one of {', '.join(QUANTIZE_VALUES)}; got {value!r}") from None


@dataclass(frozen=True, slots=True)
class QuantizeOptions:
    """``grid`` one of :data:`QUANTIZE_VALUES`; ``strength`` 0-100 (percent); ``ends``: snap note ends too."""

    grid: str = "off"
    strength: float = 100.0
    ends: bool = False

    def __post_init__(self) -> None:
        if self.grid not in QUANTIZE_VALUES:
            raise OptionsError(f"quantize must be one of {', '.join(QUANTIZE_VALUES)}; got {self.grid!r}")
        s = self.strength
        if isinstance(s, bool) or not isinstance(s, int | float) or not (math.isfinite(s) and 0 <= s <= 100):
            raise OptionsError(f"quantize_strength must be a number from 0 to 100; got {s!r}")
        if not isinstance(self.ends, bool):
            raise OptionsError(f"quantize_ends must be true or false; got {self.ends!r}")

    @property
    def active(self) -> bool:
        return self.grid != "off" and self.strength > 0


class _BarGrid:
    """Snapping beat positions to a note-value grid that restarts at every bar line."""

    def __init__(self, grid: BeatGrid, step_q: float) -> None:
        ts = grid.time_signature
        self.step_beats = step_q / ts.quarters_per_beat
        self.bar_beats = float(ts.beats_per_bar)
        self.origin = float(grid.first_downbeat)

    def snap(self, position: float) -> float:
        offset = position - self.origin
        bar = math.floor(offset / self.bar_beats + _EPS)
        in_bar = offset - bar * self.bar_beats
        snapped = min(round(in_bar / self.step_beats) * self.step_beats, self.bar_beats)
        if self.bar_beats - in_bar < abs(in_bar - snapped):  # the next bar line is nearer (odd bars: 5/8 at 1/4)
            snapped = self.bar_beats
        return self.origin + bar * self.bar_beats + snapped


def quantize(
    tr: Transcription, options: QuantizeOptions, *, grid: BeatGrid | None = None, fallback_bpm: float = 120.0
) -> Transcription:
    """``tr`` with its notes quantized on ``grid`` (default: ``tr.grid``); unchanged when ``options`` is off.

    Without any beat grid, a constant ``fallback_bpm`` grid in 4/4 is used (give the MIDI file's tempo,
    so that the notes land on the file's own grid), and that is logged.
    """
    if not options.active or not tr.notes:
        return tr
    grid = grid or tr.grid
    if grid is None:
        log.info("quantizing without a beat grid: using a constant %.1f bpm 4/4 grid", fallback_bpm)
        grid = BeatGrid.constant(fallback_bpm, tr.duration_s, reason="no beat grid")
    bars = _BarGrid(grid, step_quarters(options.grid))
    share = options.strength / 100.0
    moved = [_quantize_note(n, grid, bars, share, options.ends) for n in tr.notes]
    return replace(tr, notes=_merge_collapsed(moved), grid=grid)


def _quantize_note(note: Note, grid: BeatGrid, bars: _BarGrid, share: float, ends: bool) -> Note:
    start, end = grid.position(note.start_s), grid.position(note.end_s)
    new_start = start + share * (bars.snap(start) - start)
    if ends:
        new_end = end + share * (bars.snap(end) - end)
        shortest = max(share * bars.step_beats, (1.0 - share) * (end - start))
        if new_end - new_start < shortest - _EPS:  # snapped onto its own start: keep one grid step
            new_end = new_start + shortest
    else:
        new_end = new_start + (end - start)  # the note moves, keeping its length in beats
    start_s = max(0.0, grid.time(new_start))
    end_s = max(grid.time(new_end), start_s + 1e-3)
    return replace(note, start_s=start_s, end_s=end_s)


def _merge_collapsed(notes: list[Note]) -> tuple[Note, ...]:
    """One note per (pitch, start): notes that land on the same start become one, not two on top."""
    merged: dict[tuple[int, int], Note] = {}
    for note in notes:
        key = (note.pitch, round(note.start_s * 1e6))
        held = merged.get(key)
        if held is None:
            merged[key] = note
            continue
        longer = note if note.end_s > held.end_s else held
        merged[key] = replace(
            longer,
            amplitude=max(note.amplitude, held.amplitude),
            start_s=min(note.start_s, held.start_s),
        )
    return tuple(sorted(merged.values(), key=lambda n: (n.start_s, n.pitch, n.end_s)))
