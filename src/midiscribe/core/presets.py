"""Instrument presets: note options, frequency range, General MIDI program and pitch bends, in one table.

Chosen on the eval set's kept model outputs (``bench/sweep_notes.py``; figures in ``bench/presets.py``
and the README), with round values that help most items of a kind rather than the best of any one
item. ``general`` is the default for everything; ``basic-pitch`` is basic-pitch 0.4.0's own behaviour,
exactly (thresholds 0.5/0.3, 127.7 ms, Electric Piano 1), for comparisons and parity.

Frequency ranges are the instruments' written ranges with a little room (the set has no bass items:
the bass preset is reasoned from the range, 4- and 5-string, and from the guitar figures).
Explicit options always win over a preset (:func:`preset_note_options`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from midiscribe.core.results import NoteOptions
from midiscribe.errors import OptionsError

__all__ = ["DEFAULT_PRESET", "PRESETS", "Preset", "get_preset", "preset_note_options"]


@dataclass(frozen=True, slots=True)
class Preset:
    """What a preset sets: the note options below, the MIDI program, and a line for people."""

    onset_threshold: float
    frame_threshold: float
    min_note_length_ms: float
    min_frequency_hz: float | None
    max_frequency_hz: float | None
    melodia_trick: bool
    pitch_bends: bool
    program: int
    about: str

    def note_options(self, **overrides: Any) -> NoteOptions:
        """The preset's NoteOptions; keyword arguments that are not None replace its values."""
        values = {f.name: getattr(self, f.name) for f in fields(NoteOptions) if hasattr(self, f.name)}
        values |= {k: v for k, v in overrides.items() if v is not None}
        return NoteOptions(**values)


# One row per preset. Frequencies: piano A0-C8; guitar: drop-D/7-string low B (62 Hz) to fret 24
# of the high E (1319 Hz); bass: 5-string low B (31 Hz) to G4 (392 Hz, fret 24 of the G string) plus
# harmonics' room; voice: bass E2 (82 Hz) to soprano C6 (1047 Hz); strings: double bass E1 (41 Hz)
# to violin E7 (2637 Hz); winds: contrabassoon-free woodwinds and brass, B-flat1 (58 Hz) to
# piccolo's C7 region (2400 Hz).
PRESETS: dict[str, Preset] = {
    "general": Preset(0.6, 0.4, 80.0, None, None, True, True, 0, "any music: the default"),
    "piano": Preset(0.6, 0.4, 80.0, 26.0, 4300.0, False, False, 0, "piano and keyboards (no bends)"),
    "guitar": Preset(0.6, 0.4, 80.0, 60.0, 1400.0, False, True, 25, "acoustic and electric guitar"),
    "bass": Preset(0.6, 0.4, 80.0, 29.0, 420.0, False, True, 33, "electric and upright bass lines"),
    "voice": Preset(0.6, 0.4, 80.0, 78.0, 1100.0, True, True, 53, "singing voice"),
    "strings": Preset(0.7, 0.4, 80.0, 40.0, 2800.0, True, True, 48, "violin, viola, cello, bass, string ensembles"),
    "winds": Preset(0.6, 0.5, 80.0, 55.0, 2400.0, False, True, 71, "woodwinds and brass"),
    "basic-pitch": Preset(0.5, 0.3, 127.70, None, None, True, True, 4, "basic-pitch 0.4.0's defaults, exactly"),
}
# Why (bench/sweep_notes.py --sources=..., micro F1 onset/with offset, on the dev items of each kind):
# plucked and struck notes (piano, guitar; bass by analogy) have clear onsets, and the melodia pass
# only adds ghost notes there (piano 0.875/0.470 without it, 0.863/0.460 with); mostly one-line wind
# parts score best without it and with a higher frame threshold (0.920/0.865 at 0.6/0.5); bowed strings
# start slowly, so they keep the melodia pass and want a clearer onset (0.609/0.496 at 0.7/0.4); the
# voice keeps it too (soft onsets; one item only, voice over piano).
DEFAULT_PRESET = "general"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an OptionsError naming the valid ones otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise OptionsError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}") from None


def preset_note_options(name: str = DEFAULT_PRESET, **overrides: Any) -> NoteOptions:
    """NoteOptions of preset ``name`` with the given (non-None) options on top."""
    return get_preset(name).note_options(**overrides)
