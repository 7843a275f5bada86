"""One line from a polyphonic model's notes, arbitrated by a monophonic pitch track (issue 10).

Pure numpy. The ``mono`` model (``core/mono.py``) gives basic-pitch's notes (candidates) and PESTO's
frame-wise pitch (:class:`F0Track`); :func:`monophonic` turns them into one note at a time:

1. **Arbitration.** A candidate stays only if the tracked pitch is within half a semitone of it over
   at least ``agreement`` of its frames: harmonics, octave ghosts and bleed go.
2. **One at a time.** An overlap ends at the next onset; two onsets within the minimum note length
   are one, the better-followed candidate.
3. **Slides.** A short note that the tracked pitch only slides through, between two neighbours all
   within the bend range, joins the note it slides into: a slide is one note, bent.
4. **Bends and confidence** come from the track: a held deviation (vibrato, a slide, a note played
   off pitch) is written as per-frame bends in cents; the confidence is the share of frames the
   track follows the note times the tracker's mean voicing over it.

Measured choices (``bench/models.py``, README "Models"): basic-pitch places onsets, ends and repeated
notes well; PESTO's pitch changes lead the annotated onsets by about 30 ms and it cannot see a
repeated note, so its segmentation alone scored 0.63 onset F1 where this scores 0.89.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from midiscribe.core.results import Note, NoteOptions
from midiscribe.errors import OptionsError

FloatArray = npt.NDArray[np.float32]
BEND_RANGE_CENTS = 200  # the General MIDI default wheel range the MIDI writer assumes
GLIDE_MAX_S = 0.25  # a longer note holds its pitch somewhere: not a slide fragment
GLIDE_GAP_S = 0.15  # a slide fragment joins notes that start or end at most this far away
GLIDE_EDGE_S = 0.03  # the tracked pitch leads a note's edges: a slide is judged inside the note


@dataclass(frozen=True, slots=True)
class F0Track:
    """Frame-wise output of a pitch tracker; frame ``i`` is centred at ``i * frame_period_s``."""

    pitch_midi: FloatArray
    """Fractional MIDI pitch of each frame (meaningful where voiced)."""
    voicing: FloatArray
    """Confidence that the frame is pitched, 0..1."""
    power: FloatArray
    """Signal power of each frame (linear, any scale: only ratios are used)."""
    frame_period_s: float


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, stop) of each run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _median_filter(values: FloatArray, width: int) -> FloatArray:
    if width < 2 or values.size < 3:
        return values.copy()
    half = width // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=1).astype(np.float32)


def _held_bend(cents: npt.NDArray[np.int_], period_s: float) -> bool:
    """Whether a note is bent: a deviation held, not the flicker of an in-tune note (as ``core.bends``).

    30 cents or more for 100 ms (a slow slide, a note played sharp), 60 cents or more for 30 ms (a
    quick slide), or 30 cents or more over a quarter of a note of 200 ms or longer (vibrato, which
    swings through the pitch and never holds one side for long); a frame or two off is none of them.
    """
    size = np.abs(cents)
    if _longest_run(size >= 30) * period_s >= 0.1 or _longest_run(size >= 60) * period_s >= 0.03:
        return True
    return bool(size.size * period_s >= 0.2 and np.mean(size >= 30) >= 1 / 4)


def _longest_run(mask: npt.NDArray[np.bool_]) -> int:
    runs = _runs(mask)
    return max((b - a for a, b in runs), default=0)


@dataclass(frozen=True, slots=True)
class MonoOptions:
    """How candidate notes (from a polyphonic model) become one line (README, "Models")."""

    agreement: float = 0.5
    """A candidate stays only if the tracked pitch is within half a semitone of it over this share
    of its frames (harmonics, octave ghosts and bleed go)."""
    glide_semitones_per_s: float = 2.0
    """A short note whose tracked pitch moves this fast is part of a slide (0: never)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.agreement <= 1.0:
            raise OptionsError(f"agreement must be between 0 and 1, got {self.agreement!r}")


def _frames(track: F0Track, start_s: float, end_s: float) -> slice:
    period = track.frame_period_s
    a = max(0, round(start_s / period))
    return slice(a, max(a + 1, min(track.pitch_midi.size, round(end_s / period))))


def _agreement(track: F0Track, note: Note) -> float:
    seg = track.pitch_midi[_frames(track, note.start_s, note.end_s)]
    return float(np.mean(np.abs(seg - note.pitch) < 0.5)) if seg.size else 0.0


def _gliding(track: F0Track, note: Note, rate: float) -> bool:
    """Whether the tracked pitch slides through the note instead of holding it: a short note whose
    pitch moves at ``rate`` semitones a second or faster from its start to its end."""
    if note.duration_s > GLIDE_MAX_S:
        return False
    # the tracked pitch leads the notes' edges by a few frames: judge the note's inside only
    inside = _frames(track, note.start_s + GLIDE_EDGE_S, note.end_s - GLIDE_EDGE_S)
    seg = track.pitch_midi[inside].astype(np.float64)
    if seg.size < 4:
        return False
    slope = float(np.polyfit(np.arange(seg.size) * track.frame_period_s, seg, 1)[0])  # semitones a second
    return abs(slope) >= rate


def _absorb_glides(line: list[tuple[Note, float]], track: F0Track, rate: float) -> list[tuple[Note, float]]:
    """A slide is one note, bent: a short note between two neighbours (its pitch between theirs,
    all three within the bend range) that the tracked pitch only slides through joins the note it
    slides into, which then starts where the slide starts."""
    out = list(line)
    i = 1
    while i < len(out) - 1:
        prev, note, nxt = out[i - 1][0], out[i][0], out[i + 1][0]
        one_way = (prev.pitch - note.pitch) * (note.pitch - nxt.pitch) > 0
        close = abs(nxt.pitch - prev.pitch) * 100 <= BEND_RANGE_CENTS and _joinable(prev, note) and _joinable(note, nxt)
        if one_way and close and _gliding(track, note, rate):
            out[i : i + 2] = [(Note(note.start_s, nxt.end_s, nxt.pitch, nxt.amplitude), out[i + 1][1])]
        else:
            i += 1
    return out


def _joinable(a: Note, b: Note) -> bool:
    return abs(a.pitch - b.pitch) * 100 <= BEND_RANGE_CENTS and 0 <= b.start_s - a.end_s <= GLIDE_GAP_S


def monophonic(
    candidates: tuple[Note, ...], track: F0Track, options: NoteOptions, mono: MonoOptions | None = None
) -> tuple[Note, ...]:
    """One note at a time from a polyphonic model's notes, arbitrated by a pitch track.

    Candidates the tracked pitch does not follow are dropped; overlaps end at the next onset (a line
    plays one note at a time); a slow slide between neighbours is one note whose bends follow the
    tracked pitch; every note's bends and confidence come from the track.
    """
    mono = mono or MonoOptions()
    scored = [(n, _agreement(track, n)) for n in sorted(candidates, key=lambda n: (n.start_s, n.pitch))]
    kept = [(n, s) for n, s in scored if s >= mono.agreement]
    line: list[tuple[Note, float]] = []
    for note, score in kept:
        if line and note.start_s < line[-1][0].end_s:
            prev, prev_score = line[-1]
            if note.start_s - prev.start_s < options.min_note_length_ms / 1000:  # two onsets at once
                if score > prev_score:
                    line[-1] = (note, score)
                continue
            line[-1] = (Note(prev.start_s, note.start_s, prev.pitch, prev.amplitude), prev_score)
        line.append((note, score))
    if mono.glide_semitones_per_s > 0:
        line = _absorb_glides(line, track, mono.glide_semitones_per_s)
    return tuple(_with_track(track, n, options) for n, _ in line)


def _with_track(track: F0Track, note: Note, options: NoteOptions) -> Note:
    """The note with bends (held deviations of the tracked pitch, cents) and a confidence."""
    frames = _frames(track, note.start_s, note.end_s)
    bends: tuple[int, ...] = ()
    if options.pitch_bends:
        f0 = _median_filter(track.pitch_midi[frames].astype(np.float32), 5)
        cents = np.clip(np.round((f0 - note.pitch) * 100), -BEND_RANGE_CENTS, BEND_RANGE_CENTS).astype(int)
        if _held_bend(cents, track.frame_period_s):
            bends = tuple(cents.tolist())
    voicing = float(np.mean(track.voicing[frames])) if track.voicing[frames].size else 0.0
    confidence = round(float(np.clip(_agreement(track, note) * voicing, 0.0, 1.0)), 4)
    return Note(note.start_s, note.end_s, note.pitch, note.amplitude, bends, confidence)
