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
HELD_SEMITONES = 0.35
NEAR_SEMITONES = 0.2  # a glide leaves one note's pitch and reaches the next's, to within this  # within this of its semitone a note's pitch is held, not leaving or arriving


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
    voicing_window_ms: float = 50.0
    glide_semitones_per_s: float = 1.5
    """A stretch whose pitch moves this fast is a glide, kept as bends of a neighbouring note."""
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


@dataclass(frozen=True, slots=True)
class _Core:
    start: int
    stop: int
    centre: float
    moving: bool
    """A glide: the pitch travels through the core rather than holding it."""


def _cores(f0: FloatArray, band: float, hold: int, glide_rate: float, period_s: float) -> list[_Core]:
    """Greedy left to right: each stretch whose pitch stays within ``band`` of its running median."""
    cores: list[_Core] = []
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
        seg = f0[i:j]
        slope = float(np.polyfit(np.arange(seg.size) * period_s, seg, 1)[0]) if seg.size > 2 else 0.0
        cores.append(_Core(i, j, float(np.median(seg)), abs(slope) >= glide_rate))
        i = j
    return cores


def _stable_notes(cores: list[_Core]) -> list[_Core]:
    """The held cores, consecutive ones of the same semitone as one (a wobble is not a new note)."""
    held = [c for c in cores if not c.moving] or cores
    merged: list[_Core] = []
    for core in held:
        last = merged[-1] if merged else None
        if last is not None and round(last.centre) == round(core.centre):
            wa, wb = last.stop - last.start, core.stop - core.start
            merged[-1] = _Core(last.start, core.stop, (last.centre * wa + core.centre * wb) / (wa + wb), False)
        else:
            merged.append(core)
    return merged


def _spans(f0: FloatArray, notes: list[_Core], hold: int) -> list[tuple[int, int, int]]:
    """Frame spans (start, stop, pitch) covering one voiced run: what lies between two held notes is a
    glide into the next note (within the bend range), a fall from the previous one, or a fast change
    split where the pitch crosses the midpoint."""
    spans = [[c.start, c.stop, round(c.centre)] for c in notes]
    for k in range(len(spans) - 1):
        prev, nxt = spans[k], spans[k + 1]
        # a held note ends where its pitch starts to leave it, the next begins where it arrives
        while prev[1] - prev[0] > hold and abs(f0[prev[1] - 1] - prev[2]) > HELD_SEMITONES:
            prev[1] -= 1
        while nxt[1] - nxt[0] > hold and abs(f0[nxt[0]] - nxt[2]) > HELD_SEMITONES:
            nxt[0] += 1
        gap = f0[prev[1] : nxt[0]]
        if gap.size >= hold and np.all(np.abs(gap - nxt[2]) * 100 <= BEND_RANGE_CENTS):
            cut = prev[1]  # a glide into the next note: its frames are that note's bends
        elif gap.size >= hold and np.all(np.abs(gap - prev[2]) * 100 <= BEND_RANGE_CENTS):
            cut = nxt[0]  # a fall at the end of the previous note
        else:
            cut = prev[1] + _crossing(gap, prev[2], nxt[2])
        prev[1], nxt[0] = cut, cut
    if spans:
        spans[0][0] = _reach(f0, spans[0][0], spans[0][2], -1)
        spans[-1][1] = _reach(f0, spans[-1][1], spans[-1][2], +1)
    return [(a, b, p) for a, b, p in spans if b > a]


def _crossing(gap: FloatArray, before: int, after: int) -> int:
    """Where in ``gap`` the pitch first passes the midpoint between two notes (0 for an empty gap)."""
    if gap.size == 0:
        return 0
    past = (gap > (before + after) / 2) if after > before else (gap < (before + after) / 2)
    hits = np.flatnonzero(past)
    return int(hits[0]) if hits.size else gap.size


def _reach(f0: FloatArray, edge: int, pitch: int, step: int) -> int:
    """Extend a run's first note back (``step`` -1) or its last one forward over frames within the
    bend range: a scoop into the first note, a fall after the last."""
    if step < 0:
        while edge > 0 and abs(f0[edge - 1] - pitch) * 100 <= BEND_RANGE_CENTS:
            edge -= 1
    else:
        while edge < f0.size and abs(f0[edge] - pitch) * 100 <= BEND_RANGE_CENTS:
            edge += 1
    return edge


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


def _max_filter(values: FloatArray, width: int) -> FloatArray:
    if width < 2 or values.size < 2:
        return values.copy()
    half = width // 2
    padded = np.pad(values, half, mode="edge")
    out: FloatArray = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).max(axis=1).astype(np.float32)
    return out


def _voiced(track: F0Track, level: FloatArray, melody: MelodyOptions, options: NoteOptions) -> npt.NDArray[np.bool_]:
    """Pitched and loud enough. The tracker's confidence dips for a few frames inside held notes
    (with vibrato, at a bow change), so it is taken as its maximum over ``voicing_window_ms``."""
    period = track.frame_period_s
    width = max(1, round(melody.voicing_window_ms / 1000 / period))
    # a closing (max, then min): dips narrower than the window are filled, edges stay where they are
    confidence = -_max_filter(-_max_filter(track.voicing.astype(np.float32), width), width)
    voiced = (confidence >= melody.voicing_threshold) & (level >= -melody.floor_db)
    voiced &= np.isfinite(track.pitch_midi) & _in_range(track.pitch_midi, options)
    return _close_gaps(voiced, max(0, round(melody.gap_ms / 1000 / period)))


def notes_from_track(track: F0Track, melody: MelodyOptions, options: NoteOptions) -> tuple[Note, ...]:
    """Notes (one at a time) from a pitch track, sorted by start."""
    period = track.frame_period_s
    if track.pitch_midi.size == 0:
        return ()
    db = 10.0 * np.log10(np.maximum(track.power.astype(np.float64), 1e-12)).astype(np.float32)
    level = db - float(np.percentile(db, 95))
    hold = max(2, round(melody.hold_ms / 1000 / period))
    width = max(1, round(melody.median_ms / 1000 / period)) | 1
    min_frames = max(1, round(options.min_note_length_ms / 1000 / period))
    notes: list[Note] = []
    for a, b in _runs(_voiced(track, level, melody, options)):
        f0 = _median_filter(track.pitch_midi[a:b].astype(np.float32), width)
        cores = _cores(f0, melody.band_semitones, hold, melody.glide_semitones_per_s, period)
        for s, e, pitch in _spans(f0, _stable_notes(cores), hold):
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


@dataclass(frozen=True, slots=True)
class MonoOptions:
    """How candidate notes (from a polyphonic model) become one line (README, "Models")."""

    agreement: float = 0.5
    """A candidate stays only if the tracked pitch is within half a semitone of it over this share
    of its frames (harmonics, octave ghosts and bleed go)."""
    glide_ms: float = 0.0
    """Two neighbouring notes the pitch slides between this slowly are one note with a bend."""

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


def _slow_slide(track: F0Track, a: Note, b: Note, glide_ms: float) -> bool:
    """Whether the pitch glides from ``a`` to ``b`` (at most the bend range apart) without a break."""
    if not 0 < abs(b.pitch - a.pitch) * 100 <= BEND_RANGE_CENTS or b.start_s - a.end_s > 0.03:
        return False
    mid_a, mid_b = (a.start_s + a.end_s) / 2, (b.start_s + b.end_s) / 2
    seg = _median_filter(track.pitch_midi[_frames(track, mid_a, mid_b)].astype(np.float32), 5)
    near_a = np.flatnonzero(np.abs(seg - a.pitch) <= NEAR_SEMITONES)
    near_b = np.flatnonzero(np.abs(seg - b.pitch) <= NEAR_SEMITONES)
    if near_a.size == 0 or near_b.size == 0:
        return False
    left, arrived = int(near_a[-1]), int(near_b[0])  # a's pitch last held, b's first reached
    if arrived <= left:
        return False
    travel = seg[left:arrived]
    one_way = bool(np.all(np.diff(travel) * (b.pitch - a.pitch) >= -0.1))  # not a vibrato
    return one_way and (arrived - left) * track.frame_period_s * 1000 >= glide_ms


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
    merged: list[tuple[Note, float]] = []
    for note, score in line:
        if merged and mono.glide_ms > 0 and _slow_slide(track, merged[-1][0], note, mono.glide_ms):
            prev, prev_score = merged[-1]
            longer = prev if prev.duration_s >= note.duration_s else note  # the note it mostly is
            joined = Note(prev.start_s, note.end_s, longer.pitch, max(prev.amplitude, note.amplitude))
            merged[-1] = (joined, max(prev_score, score))
        else:
            merged.append((note, score))
    return tuple(_with_track(track, n, s, options) for n, s in merged)


def _with_track(track: F0Track, note: Note, agreement: float, options: NoteOptions) -> Note:
    """The note with bends (held deviations of the tracked pitch, cents) and a confidence."""
    frames = _frames(track, note.start_s, note.end_s)
    bends: tuple[int, ...] = ()
    if options.pitch_bends:
        f0 = _median_filter(track.pitch_midi[frames].astype(np.float32), 5)
        cents = np.clip(np.round((f0 - note.pitch) * 100), -BEND_RANGE_CENTS, BEND_RANGE_CENTS).astype(int)
        if _held_bend(cents, track.frame_period_s):
            bends = tuple(cents.tolist())
    voicing = float(np.mean(track.voicing[frames])) if track.voicing[frames].size else 0.0
    confidence = round(float(np.clip(agreement * voicing, 0.0, 1.0)), 4)
    return Note(note.start_s, note.end_s, note.pitch, note.amplitude, bends, confidence)
