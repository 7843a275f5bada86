"""The key of the music: tonic and mode, and the key signature a score writes for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from midiscribe.errors import OptionsError

__all__ = ["Key"]

Mode = Literal["major", "minor"]
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# Fifths of each major tonic pitch class (C=0, G=1, ..., F=-1), with the conventional
# spelling: Db (-5) rather than C# (+7), F# (+6) rather than Gb (-6).
_MAJOR_FIFTHS = (0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5)


@dataclass(frozen=True, slots=True)
class Key:
    """``tonic`` is a pitch class 0-11 (0 = C); ``confidence`` 0-1 says how clearly the notes say so."""

    tonic: int
    mode: Mode = "major"
    confidence: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.tonic, int) and 0 <= self.tonic <= 11):
            raise OptionsError(f"tonic must be a pitch class 0-11, got {self.tonic!r}")
        if self.mode not in ("major", "minor"):
            raise OptionsError(f"mode must be major or minor, got {self.mode!r}")

    @property
    def fifths(self) -> int:
        """Sharps (positive) or flats (negative) of the key signature, -7..7 (MIDI and MusicXML)."""
        relative_major = self.tonic if self.mode == "major" else (self.tonic + 3) % 12
        return _MAJOR_FIFTHS[relative_major]

    @property
    def name(self) -> str:
        """E.g. ``"Eb major"``, ``"F# minor"``: spelled to match the key signature."""
        names = _FLAT_NAMES if self.fifths < 0 else _SHARP_NAMES
        return f"{names[self.tonic]} {self.mode}"

    def __str__(self) -> str:
        return self.name
