"""Which pitch bends are real: one rule for every output (the roll, the CSV, the MIDI, the WAV).

Two decisions, each made once here (issue 15, defect 4: the Explorer drew bends on 62 of 195
notes of a synthesized piano while the .mid carried them on 2):

- **Noise.** The model's pitch contour has one bin per third of a semitone, and a steady,
  in-tune note flickers by a bin for a frame or three at its attack and tail. After a 3-frame
  median filter (single-frame spikes go), a note counts as bent only if it holds a deviation:
  one bin (33 cents) or more for at least 9 frames (104 ms), or two bins (67 cents) or more for
  at least 2 frames (a quick slide or vibrato). A bent note keeps the filtered contour; any
  other note has no bend at all.
- **Shared channels.** On one MIDI channel a bend moves every sounding note, so a note that
  overlaps another in time cannot keep its bend (basic-pitch's ``drop_overlapping_pitch_bends``),
  unless each pitch gets its own channel (``multiple_pitch_bends``). Writers that are not MIDI
  (CSV, JSON, the sonified WAV) get the same notes through :func:`written_bends`, so no output
  shows a bend the MIDI file does not play.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from midiscribe.core.results import Note, Transcription

__all__ = ["BIN_CENTS", "bends_kept_on_one_channel", "clean_bends", "written_bends"]

BIN_CENTS = 100 / 3
"""One bin of the model's pitch contour."""
MEDIAN_FRAMES = 3
HOLD_ONE_BIN_FRAMES = 9
HOLD_TWO_BINS_FRAMES = 2


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def clean_bends(bins: Sequence[int] | np.ndarray) -> tuple[int, ...]:
    """A note's per-frame bends in cents from its contour offsets in bins; () if it is not bent."""
    values = np.asarray(bins, dtype=np.int64)
    if values.size == 0:
        return ()
    half = MEDIAN_FRAMES // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, MEDIAN_FRAMES)
    smooth = np.median(windows, axis=1).astype(np.int64)
    size = np.abs(smooth)
    held = _longest_run(size >= 1) >= HOLD_ONE_BIN_FRAMES or _longest_run(size >= 2) >= HOLD_TWO_BINS_FRAMES
    if not held:
        return ()
    return tuple(round(b * BIN_CENTS) for b in smooth.tolist())


def bends_kept_on_one_channel(notes: Sequence[Note]) -> list[bool]:
    """For each note, whether it may keep its bends when all notes share one channel.

    A note keeps them only if it has some and overlaps no other note in time.
    """
    keep = [bool(note.bends_cents) for note in notes]
    order = sorted(range(len(notes)), key=lambda i: (notes[i].start_s, notes[i].end_s))
    for pos, i in enumerate(order):
        for j in order[pos + 1 :]:
            if notes[j].start_s >= notes[i].end_s:
                break
            keep[i] = keep[j] = False
    return keep


def written_bends(transcription: Transcription, *, multiple_pitch_bends: bool) -> Transcription:
    """The transcription with exactly the bends a MIDI file written with these options carries."""
    if multiple_pitch_bends:
        return transcription
    notes = transcription.notes
    keep = bends_kept_on_one_channel(notes)
    if all(k or not n.bends_cents for n, k in zip(notes, keep, strict=True)):
        return transcription
    settled = tuple(
        n if k or not n.bends_cents else dataclasses.replace(n, bends_cents=())
        for n, k in zip(notes, keep, strict=True)
    )
    return dataclasses.replace(transcription, notes=settled)
