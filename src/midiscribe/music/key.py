"""The key of the music: tonic and mode, the key signature a score writes for it, and its estimate.

:func:`estimate_key` is the Krumhansl–Schmuckler method (Krumhansl 1990): correlate the notes'
duration-weighted pitch-class histogram with a major and a minor key profile rotated to each of
the 12 tonics, and take the best of the 24. The profiles are Temperley's, from the Kostka–Payne
harmony textbook corpus (Temperley 2007, *Music and Probability*): on the eval set's scored renders
they name the key more often than Krumhansl–Kessler's probe-tone ratings (bench/key.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from midiscribe.errors import OptionsError

if TYPE_CHECKING:
    from midiscribe.core.results import Note

__all__ = ["PROFILES", "Key", "estimate_key"]

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

    @classmethod
    def from_name(cls, name: str) -> Key:
        """The key :attr:`name` spells (``"Eb major"``, ``"F# minor"``; either spelling of the tonic)."""
        tonic, _, mode = name.strip().partition(" ")
        for names in (_SHARP_NAMES, _FLAT_NAMES):
            if tonic in names and mode in ("major", "minor"):
                return cls(tonic=names.index(tonic), mode=mode)  # type: ignore[arg-type]
        raise OptionsError(f"not a key name: {name!r} (expected e.g. 'Eb major' or 'F# minor')")


# (major, minor) weights for scale degrees 0..11 above the tonic.
PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "temperley": (
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
    "krumhansl": (
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
}
MIN_NOTES = 8  # fewer notes than this say nothing reliable about a key
NOTE_WEIGHT_CAP_S = 2.0  # a held drone or pedal note counts as at most this long


def pitch_class_histogram(notes: Iterable[Note]) -> list[float]:
    """Seconds each pitch class sounds (each note counted up to NOTE_WEIGHT_CAP_S)."""
    hist = [0.0] * 12
    for note in notes:
        hist[note.pitch % 12] += min(max(note.end_s - note.start_s, 0.0), NOTE_WEIGHT_CAP_S)
    return hist


def _correlation(xs: list[float], ys: tuple[float, ...]) -> float:
    mx, my = sum(xs) / 12, sum(ys) / 12
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    return cov / math.sqrt(vx * vy) if vx > 0 and vy > 0 else 0.0


def estimate_key(notes: Iterable[Note], *, profile: str = "temperley") -> Key | None:
    """The best-correlating of the 24 major and minor keys, or None for too few notes.

    ``confidence`` is that correlation, clipped to 0..1 (0.9 and up: the pitch classes follow the
    profile closely; under 0.5: atonal, a drone, or too little music to tell).
    """
    if profile not in PROFILES:
        raise OptionsError(f"unknown key profile {profile!r}; valid: {', '.join(PROFILES)}")
    notes = list(notes)
    if len(notes) < MIN_NOTES:
        return None
    hist = pitch_class_histogram(notes)
    if sum(hist) <= 0:
        return None
    best: tuple[float, int, Mode] = (-2.0, 0, "major")
    major, minor = PROFILES[profile]
    for tonic in range(12):
        rotated = hist[tonic:] + hist[:tonic]  # degree d of this tonic is pitch class tonic + d
        for mode, weights in (("major", major), ("minor", minor)):
            r = _correlation(rotated, weights)
            if r > best[0]:
                best = (r, tonic, mode)  # type: ignore[assignment]
    r, tonic, mode = best
    return Key(tonic=tonic, mode=mode, confidence=round(min(1.0, max(0.0, r)), 3))
