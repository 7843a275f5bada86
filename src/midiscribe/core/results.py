"""Result and option types of the core: frozen, with units in the names."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from midiscribe.errors import OptionsError

if TYPE_CHECKING:
    from midiscribe.core.outputs import ModelOutputs
    from midiscribe.music.grid import BeatGrid
    from midiscribe.music.key import Key


@dataclass(frozen=True, slots=True)
class Note:
    """One note event.

    ``bends_cents`` holds one pitch offset from ``pitch`` per model frame, starting at
    ``start_s`` and spaced ``Transcription.frame_period_s`` apart; empty when pitch bends
    were not asked for or the note is not bent (``core.bends`` decides which are).
    ``confidence`` (0..1) is set by models that rate each note (``mono``); None otherwise.
    """

    start_s: float
    end_s: float
    pitch: int
    amplitude: float
    bends_cents: tuple[int, ...] = ()
    confidence: float | None = None

    @property
    def velocity(self) -> int:
        """MIDI velocity 1..127 from the note's mean activation (0..1)."""
        return max(1, min(127, round(127 * self.amplitude)))

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class Pedal:
    """A sustain pedal press (MIDI CC64 down at ``start_s``, up at ``end_s``)."""

    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class NoteOptions:
    """How posteriorgrams become notes. Defaults are the ``general`` preset's (``core/presets.py``).

    basic-pitch's own defaults (0.5, 0.3, 127.7 ms) are the ``basic-pitch`` preset: on the eval set
    these thresholds score about +0.05 micro F1 higher, with and without offsets (README, "Presets").
    """

    onset_threshold: float = 0.6
    frame_threshold: float = 0.4
    min_note_length_ms: float = 80.0
    min_frequency_hz: float | None = None
    max_frequency_hz: float | None = None
    melodia_trick: bool = True
    infer_onsets: bool = True
    pitch_bends: bool = True

    def __post_init__(self) -> None:
        for name in ("onset_threshold", "frame_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise OptionsError(f"{name} must be between 0 and 1, got {value!r}")
        if not (math.isfinite(self.min_note_length_ms) and 0.0 <= self.min_note_length_ms <= 10_000):
            raise OptionsError(f"min_note_length_ms must be between 0 and 10000, got {self.min_note_length_ms!r}")
        for name in ("min_frequency_hz", "max_frequency_hz"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 < value <= 20_000):
                raise OptionsError(f"{name} must be between 0 and 20000 Hz, got {value!r}")
        if (
            self.min_frequency_hz is not None
            and self.max_frequency_hz is not None
            and self.min_frequency_hz >= self.max_frequency_hz
        ):
            raise OptionsError("min_frequency_hz must be below max_frequency_hz")


@dataclass(frozen=True, slots=True)
class Transcription:
    """Notes sorted by start time then pitch, with what is needed to place them in time.

    ``grid`` (beats, bars, meter) and ``key`` are filled in by ``midiscribe.music``; ``pedals``
    by models that hear the sustain pedal. Writers use them when present.
    """

    notes: tuple[Note, ...]
    duration_s: float
    frame_period_s: float
    options: NoteOptions = field(default_factory=NoteOptions)
    outputs: ModelOutputs | None = field(default=None, repr=False, compare=False)
    """The posteriorgrams the notes came from; re-derive with ``retune(outputs, options)``."""
    pedals: tuple[Pedal, ...] = ()
    grid: BeatGrid | None = None
    key: Key | None = None
