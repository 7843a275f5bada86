"""Standard MIDI files from a transcription, written with mido.

Follows basic-pitch's ``note_events_to_midi`` (which builds a ``pretty_midi`` object), with
three deliberate differences: the program is an option (basic-pitch hard-codes Electric
Piano 1), bends are placed at ``start_s + k * frame_period_s`` (one per model frame) rather
than spread evenly over the note, and the bend is reset to 0 at each note's end so that the
next note on the channel starts in tune.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import mido
import numpy as np
import numpy.typing as npt

from midiscribe.core.bends import bends_kept_on_one_channel
from midiscribe.core.results import Note, Transcription
from midiscribe.errors import OptionsError
from midiscribe.formats.tempo_map import TempoMap
from midiscribe.music.key import Key

__all__ = ["MidiOptions", "midi_key_name", "to_midi", "write_midi"]

TICKS_PER_BEAT = 480
"""At 120 BPM one tick is 1.04 ms, so times round-trip within 0.52 ms."""

BEND_RANGE_CENTS = 200
"""The General MIDI default pitch-bend range, ±2 semitones, as basic-pitch assumes."""

_DRUM_CHANNEL = 9
_MELODIC_CHANNELS = tuple(c for c in range(16) if c != _DRUM_CHANNEL)
# At one tick, note-offs sort before bend resets, then a new note's first bend, then note-ons.
_NOTE_OFF, _BEND_RESET, _BEND, _NOTE_ON = range(4)


@dataclass(frozen=True, slots=True)
class MidiOptions:
    """How notes become a MIDI file.

    ``program`` is a General MIDI program 0-127 (0 = Acoustic Grand Piano). With
    ``multiple_pitch_bends`` each pitch gets its own track and channel so overlapping notes
    can keep their bends; otherwise bends are dropped from notes that overlap another note.
    """

    program: int = 0
    tempo_bpm: float = 120.0
    multiple_pitch_bends: bool = False

    def __post_init__(self) -> None:
        program = self.program
        if isinstance(program, bool) or not isinstance(program, int) or not 0 <= program <= 127:
            raise OptionsError(f"program must be an integer between 0 and 127, got {self.program!r}")
        tempo = self.tempo_bpm
        if not (isinstance(tempo, int | float) and math.isfinite(tempo) and 10.0 <= tempo <= 400.0):
            raise OptionsError(f"tempo_bpm must be between 10 and 400, got {tempo!r}")


@dataclass(frozen=True, slots=True)
class _Span:
    """A note placed in ticks, and whether its bends are written."""

    start: int
    end: int
    note: Note
    bends: bool


_Flagged = tuple[Note, bool]
ToTicks = Callable[[npt.ArrayLike], npt.NDArray[np.int64]]


def to_midi(transcription: Transcription, options: MidiOptions | None = None) -> mido.MidiFile:
    """Build a type-1 MIDI file: a tempo track, then one track per instrument."""
    options = options or MidiOptions()
    grid = transcription.grid
    tempo_map = (
        TempoMap.from_grid(grid, TICKS_PER_BEAT)
        if grid is not None
        else TempoMap.constant(options.tempo_bpm, TICKS_PER_BEAT)
    )
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(_meta_track(tempo_map, transcription.key))
    to_ticks = tempo_map.ticks

    flagged = _bend_flags(transcription.notes, options.multiple_pitch_bends)
    for index, (name, notes) in enumerate(_instruments(flagged, options.multiple_pitch_bends)):
        # Only 15 melodic channels exist: past 15 distinct pitches, channels are shared
        # round-robin, and bends of overlapping notes on a shared channel still collide.
        channel = _MELODIC_CHANNELS[index % len(_MELODIC_CHANNELS)]
        spans = _place(notes, to_ticks)
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=name, time=0))
        track.append(mido.Message("program_change", channel=channel, program=options.program, time=0))
        _append_events(track, _events(spans, channel, transcription.frame_period_s, to_ticks))
        midi.tracks.append(track)
    return midi


def _meta_track(tempo_map: TempoMap, key: Key | None) -> mido.MidiTrack:
    """Track 0: name, the tempo map, the time signatures and the key signature."""
    events: list[tuple[int, mido.MetaMessage]] = [(0, mido.MetaMessage("track_name", name="midiscribe"))]
    events += [
        (tick, mido.MetaMessage("time_signature", numerator=num, denominator=den))
        for tick, num, den in tempo_map.signatures
    ]
    if key is not None:
        events.append((0, mido.MetaMessage("key_signature", key=midi_key_name(key))))
    events += [(tick, mido.MetaMessage("set_tempo", tempo=tempo)) for tick, tempo in tempo_map.tempos]
    events.sort(key=lambda e: e[0])  # stable: at one tick, the order above
    track = mido.MidiTrack()
    now = 0
    for tick, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def midi_key_name(key: Key) -> str:
    """mido's name of a key signature: ``"Eb"`` for E-flat major, ``"F#m"`` for F-sharp minor."""
    tonic, mode = key.name.split()
    return tonic + ("m" if mode == "minor" else "")


def write_midi(
    transcription: Transcription,
    target: str | os.PathLike[str] | BinaryIO,
    options: MidiOptions | None = None,
) -> None:
    """Write ``transcription`` as a standard MIDI file to a path or a binary file object."""
    midi = to_midi(transcription, options)
    if isinstance(target, str | os.PathLike):
        midi.save(filename=os.fspath(target))
    else:
        midi.save(file=target)


def _instruments(notes: Sequence[_Flagged], per_pitch: bool) -> list[tuple[str, list[_Flagged]]]:
    """One instrument for all notes, or one per distinct pitch (always at least one track)."""
    if not per_pitch or not notes:
        return [("midiscribe", list(notes))]
    by_pitch: dict[int, list[_Flagged]] = {}
    for note, keep in notes:
        by_pitch.setdefault(note.pitch, []).append((note, keep))
    return [(f"midiscribe pitch {pitch}", by_pitch[pitch]) for pitch in sorted(by_pitch)]


def _bend_flags(notes: Sequence[Note], multiple_pitch_bends: bool) -> list[_Flagged]:
    """Each note with whether it keeps its bends (on a shared channel: ``core.bends``' rule)."""
    keep = [bool(n.bends_cents) for n in notes] if multiple_pitch_bends else bends_kept_on_one_channel(notes)
    return list(zip(notes, keep, strict=True))


def _place(notes: Sequence[_Flagged], to_ticks: ToTicks) -> list[_Span]:
    """Absolute ticks from absolute seconds (no drift), one sounding note per pitch at a time.

    A note lasts at least one tick, so a note-off never precedes its own note-on. A note that
    starts while the same pitch still sounds ends the earlier one (MIDI cannot tell two
    overlapping notes of one pitch on one channel apart); notes starting on the same tick
    merge into one.
    """
    starts = to_ticks([n.start_s for n, _ in notes]).tolist()
    ends = to_ticks([n.end_s for n, _ in notes]).tolist()
    spans = sorted(
        (_Span(a, b, n, keep) for (n, keep), a, b in zip(notes, starts, ends, strict=True)),
        key=lambda s: (s.note.pitch, s.start, -s.end),
    )
    placed: list[_Span] = []
    for span in spans:
        prev = placed[-1] if placed and placed[-1].note.pitch == span.note.pitch else None
        if prev is not None and span.start <= prev.start:
            continue
        if prev is not None and span.start < prev.end:
            placed[-1] = _Span(prev.start, span.start, prev.note, prev.bends)
        placed.append(_Span(span.start, max(span.end, span.start + 1), span.note, span.bends))
    return placed


def _bend_value(cents: int) -> int:
    """Pitch-wheel value for an offset in cents, at a ±2 semitone range, clipped."""
    return max(-8192, min(8191, round(cents / BEND_RANGE_CENTS * 8192)))


def _events(
    spans: Iterable[_Span], channel: int, frame_period_s: float, to_ticks: ToTicks
) -> list[tuple[int, int, mido.Message]]:
    """(tick, order, message) for every note-on, note-off and pitch-wheel change."""
    events: list[tuple[int, int, mido.Message]] = []
    for span in spans:
        note = span.note
        events.append((span.start, _NOTE_ON, _note_msg("note_on", channel, note)))
        events.append((span.end, _NOTE_OFF, _note_msg("note_off", channel, note)))
        if not span.bends:
            continue
        ticks = to_ticks(note.start_s + frame_period_s * np.arange(len(note.bends_cents))).tolist()
        for tick, cents in zip(ticks, note.bends_cents, strict=True):
            if tick >= span.end:
                break
            wheel = mido.Message("pitchwheel", channel=channel, pitch=_bend_value(cents))
            events.append((max(tick, span.start), _BEND, wheel))
        events.append((span.end, _BEND_RESET, mido.Message("pitchwheel", channel=channel, pitch=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def _note_msg(kind: str, channel: int, note: Note) -> mido.Message:
    velocity = note.velocity if kind == "note_on" else 0
    return mido.Message(kind, channel=channel, note=note.pitch, velocity=velocity)


def _append_events(track: mido.MidiTrack, events: Iterable[tuple[int, int, mido.Message]]) -> None:
    """Append events as delta times, skipping pitch-wheel messages that change nothing."""
    now = 0
    wheel = 0
    for tick, _, message in events:
        if message.type == "pitchwheel":
            if message.pitch == wheel:
                continue
            wheel = message.pitch
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
