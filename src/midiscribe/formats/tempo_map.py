"""A beat grid as a MIDI tempo map and time signatures: every beat on a MIDI beat, every downbeat on a bar line.

Tick 0 is time 0. The span before the grid's first beat is one whole beat at its own tempo (more
than one only if one beat would be slower than MIDI can say), so the first beat falls on a MIDI
beat rather than part-way into one; from there each grid beat is one MIDI beat (a quarter in x/4,
a dotted quarter in 6/8, a half in x/2) with the tempo that makes it last exactly as long as in
the audio. Beats before the first downbeat (the span before the first beat and a pickup) form a
short first bar with its own time signature, so bar lines fall on downbeats. Tempos are whole
microseconds per quarter note, rounded so that the rounding never accumulates: every beat lands
within 50 microseconds of its time, and notes are placed with the same rounded map a reader uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from midiscribe.music.grid import BeatGrid

__all__ = ["TempoMap"]

MAX_TEMPO_US = 0xFFFFFF  # the largest tempo a MIDI set_tempo can hold: 16.8 s a quarter note
_KEEP_US = 50.0  # a beat may land this far (microseconds) from its time to keep the tempo unchanged
_LEAD_MIN_S = 0.001  # a first beat this close to 0 is on tick 0


@dataclass(frozen=True, slots=True)
class TempoMap:
    """Tempo changes (tick, microseconds per quarter), time signatures (tick, numerator,
    denominator), and the seconds-to-ticks mapping of the same map."""

    tempos: tuple[tuple[int, int], ...]
    signatures: tuple[tuple[int, int, int], ...]
    beat_ticks: npt.NDArray[np.float64]  # tick of each grid point (lead-in beats, then the grid's beats)
    beat_times_s: npt.NDArray[np.float64]  # its time as a reader of the file computes it
    ticks_per_beat: float = 480.0  # ticks of one grid beat
    ticks_per_quarter: int = 480

    @classmethod
    def constant(cls, tempo_bpm: float, ticks_per_quarter: int) -> TempoMap:
        tempo = round(60_000_000 / tempo_bpm)
        return cls(
            tempos=((0, tempo),),
            signatures=((0, 4, 4),),
            beat_ticks=np.array([0.0, float(ticks_per_quarter)]),
            beat_times_s=np.array([0.0, tempo / 1e6]),
            ticks_per_beat=float(ticks_per_quarter),
            ticks_per_quarter=ticks_per_quarter,
        )

    @classmethod
    def from_grid(cls, grid: BeatGrid, ticks_per_quarter: int) -> TempoMap:
        ts = grid.time_signature
        qpb = ts.quarters_per_beat
        tpb = ticks_per_quarter * qpb  # ticks per grid beat (whole: 480 * 0.5 at least)
        beats = np.asarray(grid.beats_s, dtype=np.float64)
        lead = _lead_beats(float(beats[0]), qpb)
        # every grid point's time: the lead-in beats spread over [0, first beat), then the grid
        points = np.concatenate([np.linspace(0.0, beats[0], lead, endpoint=False), beats]) if lead else beats
        tempos: list[tuple[int, int]] = []
        times = [float(points[0])]
        done_us = points[0] * 1e6
        for i in range(len(points) - 1):
            target_us = points[i + 1] * 1e6
            # error-diffused, so the rounding never accumulates; the tempo in force is kept while
            # it keeps the beat within _KEEP_US, so a steady tempo is one tempo event
            if tempos and abs(done_us + tempos[-1][1] * qpb - target_us) <= _KEEP_US:
                tempo = tempos[-1][1]
            else:
                tempo = min(MAX_TEMPO_US, max(1, round((target_us - done_us) / qpb)))
            if not tempos or tempos[-1][1] != tempo:
                tempos.append((round(i * tpb), tempo))
            done_us += tempo * qpb
            times.append(done_us / 1e6)
        ticks = np.arange(len(points), dtype=np.float64) * tpb
        return cls(
            tempos=tuple(tempos),
            signatures=_signatures(grid, lead, round(tpb)),
            beat_ticks=ticks,
            beat_times_s=np.asarray(times),
            ticks_per_beat=tpb,
            ticks_per_quarter=ticks_per_quarter,
        )

    def ticks(self, times_s: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Ticks of times in seconds (the last tempo continues past the last grid point)."""
        x = np.asarray(times_s, dtype=np.float64)
        t, k = self.beat_times_s, self.beat_ticks
        rate = (k[-1] - k[-2]) / (t[-1] - t[-2])
        out = np.where(x <= t[-1], np.interp(x, t, k), k[-1] + (x - t[-1]) * rate)
        return np.round(out).astype(np.int64)

    def bar_beat(self, time_s: float) -> tuple[int, float]:
        """(bar, beat) of a time as the file counts them, from 1: bar 1 starts at tick 0 (a short
        lead-in bar when the music's first downbeat comes later), the beat is a grid beat."""
        tick = float(self.ticks([time_s])[0])
        bar = 1
        for i, (start, numerator, denominator) in enumerate(self.signatures):
            bar_ticks = numerator * self.ticks_per_quarter * 4 / denominator
            end = self.signatures[i + 1][0] if i + 1 < len(self.signatures) else math.inf
            if tick < end:
                k = math.floor((tick - start) / bar_ticks + 1e-9)
                return bar + k, (tick - start - k * bar_ticks) / self.ticks_per_beat + 1.0
            bar += round((end - start) / bar_ticks)
        raise AssertionError("unreachable: the last signature lasts forever")


def _lead_beats(first_s: float, quarters_per_beat: float) -> int:
    """How many beats the span before the first beat is: one, unless slower than MIDI allows."""
    if first_s < _LEAD_MIN_S:
        return 0
    return max(1, math.ceil(first_s * 1e6 / quarters_per_beat / MAX_TEMPO_US))


def _signatures(grid: BeatGrid, lead: int, ticks_per_beat: int) -> tuple[tuple[int, int, int], ...]:
    """The meter from tick 0, after a short first bar of the beats before the first downbeat."""
    ts = grid.time_signature
    per_bar = ts.beats_per_bar
    units_per_beat = ts.numerator // per_bar  # 3 in compound meters, else 1
    short = (lead + grid.first_downbeat) % per_bar
    if short == 0:
        return ((0, ts.numerator, ts.denominator),)
    return ((0, short * units_per_beat, ts.denominator), (short * ticks_per_beat, ts.numerator, ts.denominator))
