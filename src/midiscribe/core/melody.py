"""A monophonic pitch track -> notes: voicing, stable-pitch cores, glides as bends, re-attacks.

Pure numpy: the ``mono`` model's pitch tracker gives frame-wise pitch, voicing and power; this
module decides where notes are (issue 10):

1. **Voicing.** A frame is voiced when the tracker's confidence and its loudness (relative to the
   file's loud frames) are both high enough; gaps of a frame or two inside a voiced run are closed.
2. **Cores.** Inside a voiced run, a *core* is a stretch whose pitch stays within ``band_semitones``
   of its median (vibrato fits inside), at least ``hold_ms`` long. Consecutive cores of the same
   semitone are one note (a vibrato swing or a wobble is not a new note).
3. **Transitions.** Frames between two cores are a fast change (split where the pitch crosses the
   midpoint) or a glide: a slide within the bend range is the start of the note it leads into, its
   frames kept as pitch bends, not split into notes. A scoop before a run's first core and a fall
   after its last one are bends of that note.
4. **Re-attacks.** A repeated note on one pitch shows as a dip and rise of loudness (re-bowing,
   tonguing, a new syllable): a core is split at such dips.

Every note carries a confidence: the mean voicing confidence over its frames.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from midiscribe.core.results import Note, NoteOptions
from midiscribe.errors import OptionsError

FloatArray = npt.NDArray[np.float32]
BEND_RANGE_CENTS = 200  # the General MIDI default wheel range the MIDI writer assumes


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


@dataclass(frozen=True, slots=True)
class MelodyOptions:
    """How a pitch track becomes notes (defaults tuned on the eval set's monophonic items; README)."""

    voicing_threshold: float = 0.5
    floor_db: float = 40.0
    """Frames this much quieter than the file's loud frames are silence."""
    band_semitones: float = 0.6
    hold_ms: float = 50.0
    median_ms: float = 50.0
    rise_db: float = 6.0
    """A dip and a rise of loudness this deep inside a note is a re-attack of the same pitch."""
    gap_ms: float = 20.0
    """Unvoiced gaps this short inside a run are closed."""
    onset_shift_ms: float = 0.0
    """Added to every start time: the tracker's measured latency, negative when it is late."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.voicing_threshold <= 1.0:
            raise OptionsError(f"voicing_threshold must be between 0 and 1, got {self.voicing_threshold!r}")
        for name in ("floor_db", "band_semitones", "hold_ms", "median_ms", "rise_db"):
            if not getattr(self, name) > 0:
                raise OptionsError(f"{name} must be positive, got {getattr(self, name)!r}")


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, stop) of each run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _close_gaps(mask: npt.NDArray[np.bool_], max_gap: int) -> npt.NDArray[np.bool_]:
    out = mask.copy()
    runs = _runs(mask)
    for (_, stop), (start, _) in itertools.pairwise(runs):
        if start - stop <= max_gap:
            out[stop:start] = True
    return out


def _median_filter(values: FloatArray, width: int) -> FloatArray:
    if width < 2 or values.size < 3:
        return values.copy()
    half = width // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=1).astype(np.float32)


def _cores(f0: FloatArray, band: float, hold: int) -> list[tuple[int, int, float]]:
    """Greedy left to right: (start, stop, median pitch) of each stretch that holds its pitch."""
    cores: list[tuple[int, int, float]] = []
    i, n = 0, f0.size
    while i + hold <= n:
        centre = float(np.median(f0[i : i + hold]))
        if np.max(np.abs(f0[i : i + hold] - centre)) > band:
            i += 1
            continue
        j = i + hold
        while j < n and abs(f0[j] - centre) <= band:
            j += 1
            if (j - i) % hold == 0:  # follow a slow drift of intonation
                centre = float(np.median(f0[i:j]))
        cores.append((i, j, float(np.median(f0[i:j]))))
        i = j
    return cores


def _merge_same_pitch(cores: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    merged: list[tuple[int, int, float]] = []
    for core in cores:
        if merged and round(merged[-1][2]) == round(core[2]):
            a, b, p = merged[-1]
            weight_a, weight_b = b - a, core[1] - core[0]
            merged[-1] = (a, core[1], (p * weight_a + core[2] * weight_b) / (weight_a + weight_b))
        else:
            merged.append(core)
    return merged


def _boundaries(f0: FloatArray, cores: list[tuple[int, int, float]], hold: int) -> list[tuple[int, int, int]]:
    """Frame spans (start, stop, pitch) of the notes of one voiced run, covering glides as bends."""
    spans: list[tuple[int, int, int]] = []
    n = f0.size
    for k, (a, b, centre) in enumerate(cores):
        pitch = round(centre)
        start = a
        if k == 0:
            start = _reach_back(f0, 0, a, pitch)
        else:
            prev_stop = spans[-1][1]
            gap = f0[prev_stop:a]
            if gap.size <= hold // 2 or np.any(np.abs(gap - pitch) * 100 > BEND_RANGE_CENTS):
                # a fast change (or a slide too wide to bend): split where the pitch crosses the midpoint
                mid = (spans[-1][2] + pitch) / 2
                seg = f0[spans[-1][0] : b]
                crossing = _first_crossing(seg - mid, spans[-1][2] < pitch, prev_stop - spans[-1][0])
                start = spans[-1][0] + crossing
            else:
                start = prev_stop  # a glide into this note: its frames are this note's bends
            spans[-1] = (spans[-1][0], start, spans[-1][2])
        stop = b
        if k == len(cores) - 1:
            stop = _reach_forward(f0, b, n, pitch)
        spans.append((start, stop, pitch))
    return [s for s in spans if s[1] > s[0]]


def _first_crossing(rel: FloatArray, rising: bool, not_before: int) -> int:
    """The first index at or after ``not_before``'s core end where ``rel`` changes sign the given way."""
    sign = rel > 0 if rising else rel < 0
    hits = np.flatnonzero(sign)
    hits = hits[hits >= min(not_before, rel.size - 1)] if hits.size else hits
    return int(hits[0]) if hits.size else not_before


def _reach_back(f0: FloatArray, lo: int, a: int, pitch: int) -> int:
    start = a
    while start > lo and abs(f0[start - 1] - pitch) * 100 <= BEND_RANGE_CENTS:
        start -= 1
    return start


def _reach_forward(f0: FloatArray, b: int, hi: int, pitch: int) -> int:
    stop = b
    while stop < hi and abs(f0[stop] - pitch) * 100 <= BEND_RANGE_CENTS:
        stop += 1
    return stop


def _reattacks(level_db: FloatArray, rise_db: float, min_frames: int) -> list[int]:
    """Frames where a note restarts: a local dip of loudness followed by a rise of ``rise_db``."""
    cuts: list[int] = []
    n = level_db.size
    look = max(3, min_frames)
    for t in range(min_frames, n - min_frames):
        window = level_db[max(0, t - look) : t + look + 1]
        if level_db[t] > window.min():
            continue
        before = level_db[max(0, t - 4 * look) : t].max()
        after = level_db[t + 1 : t + 1 + 2 * look].max()
        deep = after - level_db[t] >= rise_db and before - level_db[t] >= rise_db / 2
        if deep and (not cuts or t - cuts[-1] >= min_frames):
            cuts.append(t)
    return cuts


def notes_from_track(track: F0Track, melody: MelodyOptions, options: NoteOptions) -> tuple[Note, ...]:
    """Notes (one at a time) from a pitch track, sorted by start."""
    period = track.frame_period_s
    n = track.pitch_midi.size
    if n == 0:
        return ()
    db = 10.0 * np.log10(np.maximum(track.power.astype(np.float64), 1e-12)).astype(np.float32)
    reference = float(np.percentile(db, 95))
    level = db - reference
    voiced = (track.voicing >= melody.voicing_threshold) & (level >= -melody.floor_db)
    voiced &= np.isfinite(track.pitch_midi)
    voiced &= _in_range(track.pitch_midi, options)
    voiced = _close_gaps(voiced, max(0, round(melody.gap_ms / 1000 / period)))
    hold = max(2, round(melody.hold_ms / 1000 / period))
    width = max(1, round(melody.median_ms / 1000 / period)) | 1
    min_frames = max(1, round(options.min_note_length_ms / 1000 / period))
    notes: list[Note] = []
    for a, b in _runs(voiced):
        f0 = _median_filter(track.pitch_midi[a:b].astype(np.float32), width)
        cores = _merge_same_pitch(_cores(f0, melody.band_semitones, hold))
        for s, e, pitch in _boundaries(f0, cores, hold):
            cuts = _reattacks(level[a + s : a + e], melody.rise_db, min_frames)
            edges = [s, *(s + c for c in cuts), e]
            for s2, e2 in itertools.pairwise(edges):
                if e2 - s2 >= min_frames:
                    notes.append(_note(track, level, f0, a, s2, e2, pitch, melody, options))
    return tuple(notes)


def _held_bend(cents: npt.NDArray[np.int_], period_s: float) -> bool:
    """Whether a note is bent: a deviation held, not the flicker of an in-tune note (as ``core.bends``).

    30 cents or more for 100 ms (vibrato, a slow slide, a note played sharp), or 60 cents or more
    for 30 ms (a quick slide); a frame or two off at a transition is neither.
    """
    size = np.abs(cents)
    return _longest_run(size >= 30) * period_s >= 0.1 or _longest_run(size >= 60) * period_s >= 0.03


def _longest_run(mask: npt.NDArray[np.bool_]) -> int:
    runs = _runs(mask)
    return max((b - a for a, b in runs), default=0)


def _in_range(pitch: FloatArray, options: NoteOptions) -> npt.NDArray[np.bool_]:
    ok = np.ones(pitch.size, dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        hz = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
    if options.min_frequency_hz is not None:
        ok &= hz >= options.min_frequency_hz
    if options.max_frequency_hz is not None:
        ok &= hz <= options.max_frequency_hz
    return ok


def _note(
    track: F0Track,
    level: FloatArray,
    f0: FloatArray,
    run_start: int,
    s: int,
    e: int,
    pitch: int,
    melody: MelodyOptions,
    options: NoteOptions,
) -> Note:
    period = track.frame_period_s
    frames = slice(run_start + s, run_start + e)
    loudness = float(np.mean(level[frames]))
    amplitude = float(np.clip((loudness + melody.floor_db) / melody.floor_db, 0.05, 1.0))
    bends: tuple[int, ...] = ()
    if options.pitch_bends:
        cents = np.clip(np.round((f0[s:e] - pitch) * 100), -BEND_RANGE_CENTS, BEND_RANGE_CENTS).astype(int)
        if _held_bend(cents, period):
            bends = tuple(cents.tolist())
    start_s = max(0.0, (run_start + s) * period + melody.onset_shift_ms / 1000)
    return Note(
        start_s=start_s,
        end_s=(run_start + e) * period,
        pitch=pitch,
        amplitude=amplitude,
        bends_cents=bends,
        confidence=round(float(np.mean(track.voicing[frames])), 4),
    )
