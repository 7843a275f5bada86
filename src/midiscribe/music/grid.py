"""The beat grid: where the beats of the music fall, which of them start bars, and the meter.

Positions are in beats, counted from the grid's first beat (position 0.0). Between two beats
time and position map linearly (the tempo is constant within a beat); before the first beat
and after the last, the nearest beat interval is extended. That mapping is what a MIDI tempo
map with one tempo per beat encodes, so a note's position here is its position in the file.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from midiscribe.errors import OptionsError

__all__ = ["BeatGrid", "TimeSignature"]


@dataclass(frozen=True, slots=True)
class TimeSignature:
    """``beats_per_bar`` beats of ``beat_unit`` (4: quarter, 8: eighth, 2: half), as written in a score.

    For compound meters the grid's beat is the dotted unit (6/8 has 2 beats of a dotted quarter):
    ``beats_per_bar`` counts grid beats, ``numerator``/``denominator`` are what the score shows.
    """

    numerator: int = 4
    denominator: int = 4

    def __post_init__(self) -> None:
        if not (1 <= self.numerator <= 32) or self.denominator not in (1, 2, 4, 8, 16, 32):
            raise OptionsError(f"invalid time signature {self.numerator}/{self.denominator}")

    @property
    def compound(self) -> bool:
        return self.denominator >= 8 and self.numerator % 3 == 0 and self.numerator > 3

    @property
    def beats_per_bar(self) -> int:
        return self.numerator // 3 if self.compound else self.numerator

    @property
    def quarters_per_beat(self) -> float:
        """Length of one grid beat in quarter notes (1.0 in x/4, 1.5 in 6/8, 2.0 in x/2)."""
        unit = 4.0 / self.denominator
        return unit * 3 if self.compound else unit

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True, slots=True)
class BeatGrid:
    """Beats in seconds of the audio, strictly increasing, and the bar structure.

    ``first_downbeat`` is the index of the first beat that starts a bar (beats before it are
    a pickup); from there every ``time_signature.beats_per_bar`` beats start a bar.
    ``tempo_bpm`` is the typical tempo in grid beats per minute, or None when no beat could
    be found, in which case ``reason`` says why and the beats are a neutral constant grid.
    """

    beats_s: tuple[float, ...]
    time_signature: TimeSignature = TimeSignature()
    first_downbeat: int = 0
    tempo_bpm: float | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if len(self.beats_s) < 2:
            raise OptionsError("a beat grid needs at least two beats")
        if any(b <= a for a, b in zip(self.beats_s, self.beats_s[1:], strict=False)):
            raise OptionsError("beat times must be strictly increasing")
        if not 0 <= self.first_downbeat < len(self.beats_s):
            raise OptionsError("first_downbeat must index a beat")

    @classmethod
    def constant(
        cls,
        tempo_bpm: float,
        duration_s: float,
        *,
        time_signature: TimeSignature | None = None,
        start_s: float = 0.0,
        reason: str | None = None,
        detected: bool = False,
    ) -> BeatGrid:
        """A grid at one tempo from ``start_s`` to past ``duration_s``; ``tempo_bpm`` is kept only if ``detected``."""
        if not (math.isfinite(tempo_bpm) and 10 <= tempo_bpm <= 400):
            raise OptionsError(f"tempo_bpm must be between 10 and 400, got {tempo_bpm!r}")
        period = 60.0 / tempo_bpm
        n = max(2, math.ceil((max(duration_s, 0.0) - start_s) / period) + 1)
        beats = tuple(start_s + i * period for i in range(n))
        return cls(
            beats_s=beats,
            time_signature=time_signature or TimeSignature(),
            tempo_bpm=tempo_bpm if detected else None,
            reason=reason,
        )

    @property
    def n_beats(self) -> int:
        return len(self.beats_s)

    @property
    def beats_per_bar(self) -> int:
        return self.time_signature.beats_per_bar

    @property
    def downbeats_s(self) -> tuple[float, ...]:
        return self.beats_s[self.first_downbeat :: self.beats_per_bar]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: beats and downbeats in seconds (rounded to 0.1 ms), the meter, the tempo."""
        return {
            "beats_s": [round(b, 4) for b in self.beats_s],
            "downbeats_s": [round(b, 4) for b in self.downbeats_s],
            "first_downbeat": self.first_downbeat,
            "beats_per_bar": self.beats_per_bar,
            "time_signature": str(self.time_signature),
            "tempo_bpm": self.tempo_bpm,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BeatGrid:
        """The grid :meth:`as_dict` wrote."""
        numerator, denominator = (int(x) for x in str(data["time_signature"]).split("/"))
        return cls(
            beats_s=tuple(float(b) for b in data["beats_s"]),
            time_signature=TimeSignature(numerator, denominator),
            first_downbeat=int(data["first_downbeat"]),
            tempo_bpm=None if data.get("tempo_bpm") is None else float(data["tempo_bpm"]),
            reason=data.get("reason"),
        )

    def position(self, time_s: float) -> float:
        """The beat position of a time (0.0 at the first beat; fractional between beats)."""
        beats = self.beats_s
        i = bisect.bisect_right(beats, time_s) - 1
        i = min(max(i, 0), len(beats) - 2)
        a, b = beats[i], beats[i + 1]
        return i + (time_s - a) / (b - a)

    def time(self, position: float) -> float:
        """The time of a beat position; the inverse of :meth:`position`."""
        beats = self.beats_s
        i = min(max(math.floor(position), 0), len(beats) - 2)
        a, b = beats[i], beats[i + 1]
        return a + (position - i) * (b - a)

    def bar_and_beat(self, time_s: float) -> tuple[int, float]:
        """(bar, beat within the bar) of a time, both counted from 1 as musicians do.

        Bar 1 starts at the first downbeat; a pickup before it is bar 0.
        """
        offset = self.position(time_s) - self.first_downbeat
        bar = math.floor(offset / self.beats_per_bar)
        beat = offset - bar * self.beats_per_bar
        return bar + 1, beat + 1.0
