"""Note events as CSV: one row per note, six fields, readable by any CSV reader.

The header is fixed::

    start_s,end_s,pitch_midi,velocity,amplitude,pitch_bends

Times and amplitude carry 4 decimals (0.1 ms). ``pitch_bends`` is a single field holding
the note's per-frame offsets in cents separated by spaces (``"0 0 33 33"``), always quoted
and empty (``""``) when the note has none, so a row never splits into more fields (basic-pitch
wrote each bend as its own column, so rows had different lengths).

With ``beat_columns`` two more fields follow, ``start_beat,end_beat``: where the note starts and
ends on the MIDI file's own bars and beats, as ``bar.beat.thousandths`` counted from 1 as a DAW
shows them (``"3.2.500"``: bar 3, half-way through beat 2). Bar 1 starts at 0 s; when the
music's first downbeat comes later, bar 1 is the short bar before it (``formats/tempo_map.py``).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from decimal import Decimal
from typing import TextIO

from midiscribe.core.results import Note, Transcription
from midiscribe.errors import MidiscribeError
from midiscribe.formats.midi import TICKS_PER_BEAT
from midiscribe.formats.tempo_map import TempoMap

__all__ = ["BEAT_COLUMNS", "HEADER", "read_notes_csv", "write_notes_csv"]

HEADER = ("start_s", "end_s", "pitch_midi", "velocity", "amplitude", "pitch_bends")
BEAT_COLUMNS = ("start_beat", "end_beat")

_FOUR_PLACES = Decimal("0.0001")


def write_notes_csv(
    transcription: Transcription, target: str | os.PathLike[str] | TextIO, *, beat_columns: bool = False
) -> None:
    """Write one row per note, sorted by (start_s, pitch), to a path or a text file object.

    ``beat_columns`` adds ``start_beat,end_beat`` (on the transcription's grid, or a constant
    120 bpm 4/4 grid without one, as the MIDI writer's default). A file object should be opened
    with ``newline=""``, as the csv module asks.
    """
    tempo_map = None
    if beat_columns:
        grid = transcription.grid
        tempo_map = (
            TempoMap.from_grid(grid, TICKS_PER_BEAT) if grid is not None else TempoMap.constant(120.0, TICKS_PER_BEAT)
        )
    if isinstance(target, str | os.PathLike):
        with open(target, "w", newline="", encoding="utf-8") as handle:
            _write(transcription.notes, handle, tempo_map)
    else:
        _write(transcription.notes, target, tempo_map)


def read_notes_csv(source: str | os.PathLike[str] | TextIO) -> list[Note]:
    """Read notes written by :func:`write_notes_csv` (times and amplitude to 4 decimals).

    Raises :class:`~midiscribe.errors.MidiscribeError` if the header or a row is not ours.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, newline="", encoding="utf-8") as handle:
            return _read(handle)
    return _read(source)


def _write(notes: Iterable[Note], handle: TextIO, tempo_map: TempoMap | None) -> None:
    csv.writer(handle, lineterminator="\n").writerow(HEADER + (BEAT_COLUMNS if tempo_map else ()))
    # QUOTE_NONNUMERIC quotes exactly the bends field: the others are numbers. Decimals count
    # as numbers and print with a fixed number of places, which floats would not.
    rows = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    for note in sorted(notes, key=lambda n: (n.start_s, n.pitch)):
        rows.writerow(
            (
                _fixed(note.start_s),
                _fixed(note.end_s),
                note.pitch,
                note.velocity,
                _fixed(note.amplitude),
                " ".join(str(cents) for cents in note.bends_cents),
            )
            + ((_bar_beat(tempo_map, note.start_s), _bar_beat(tempo_map, note.end_s)) if tempo_map else ())
        )


def _bar_beat(tempo_map: TempoMap, time_s: float) -> str:
    bar, beat = tempo_map.bar_beat(time_s)
    whole = math.floor(beat + 5e-4)
    return f"{bar}.{whole}.{max(0, round((beat - whole) * 1000)):03d}"


def _fixed(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(_FOUR_PLACES)


def _read(handle: TextIO) -> list[Note]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None or tuple(header) not in (HEADER, HEADER + BEAT_COLUMNS):
        raise MidiscribeError(f"not a midiscribe notes CSV: header is {header!r}, expected {HEADER!r}")
    notes = []
    for line, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise MidiscribeError(f"line {line}: expected {len(header)} fields, got {len(row)}")
        try:
            notes.append(
                Note(
                    start_s=float(row[0]),
                    end_s=float(row[1]),
                    pitch=int(row[2]),
                    amplitude=float(row[4]),
                    bends_cents=tuple(int(cents) for cents in row[5].split()),
                )
            )
        except ValueError as exc:
            raise MidiscribeError(f"line {line}: {exc}") from exc
    return notes
