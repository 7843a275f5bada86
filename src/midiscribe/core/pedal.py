"""The sustain pedal applied to notes: how long each one sounds, for notation (issue 10).

A model that hears the pedal reports notes as played (key down to key up) and the pedal apart.
With the pedal down when a key is released, the damper stays off the string until the pedal comes
up, so for notation a note lasts until the release of the pedal that holds it, but never past the
next onset of the same key (a repeated note re-strikes the string).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace

from midiscribe.core.results import Note, Pedal

__all__ = ["pedal_end_s", "sustained_notes"]


def pedal_end_s(end_s: float, pedals: Sequence[Pedal]) -> float:
    """When a key released at ``end_s`` stops sounding: the release of the pedal held then, if any.

    ``pedals`` sorted by ``start_s`` and not overlapping (as models report them).
    """
    return _held_until(end_s, pedals, [p.start_s for p in pedals])


def _held_until(end_s: float, pedals: Sequence[Pedal], starts: Sequence[float]) -> float:
    i = bisect.bisect_right(starts, end_s) - 1
    if i >= 0 and pedals[i].start_s <= end_s < pedals[i].end_s:
        return pedals[i].end_s
    return end_s


def sustained_notes(notes: Sequence[Note], pedals: Sequence[Pedal]) -> tuple[Note, ...]:
    """Notes lengthened by the sustain pedal, cut at the next onset of the same pitch."""
    if not pedals:
        return tuple(notes)
    ordered = sorted(pedals, key=lambda p: p.start_s)
    starts = [p.start_s for p in ordered]
    next_onset: dict[int, float] = {}
    out: list[Note] = []
    for note in sorted(notes, key=lambda n: (n.start_s, n.pitch), reverse=True):
        end = _held_until(note.end_s, ordered, starts)
        end = min(end, next_onset.get(note.pitch, end))
        out.append(replace(note, end_s=end) if end > note.end_s else note)
        next_onset[note.pitch] = note.start_s
    out.reverse()
    return tuple(out)
