"""Beats, downbeats, tempo and meter from the model's own outputs: a permissive beat tracker (issue 9).

**Activation.** What the transcription model already heard: the onset peaks of every pitch of the
onset posteriorgram and the rises of the note posteriorgram (the soft attacks of bows, voices and
winds), each counted only where a note follows within ``_AHEAD`` frames (the onset head also fires
on noise), placed at its true time (``frames.frame_times_s``: frames are not evenly spaced across
windows), on an even ``FPS`` grid, with onsets below ``BASS_BELOW`` weighted up (the bass marks
the beat in syncopated textures), compressed and smoothed.

**Beats.** Dynamic programming over (beat frame, beat interval): a beat at frame ``t`` reached by
an interval of ``d`` frames scores the activation at ``t`` minus a per-beat cost, plus a log-normal
tempo prior, plus the best score of a beat at ``t - d`` whose own interval ``d'`` is near ``d``
(a Laplacian penalty on ``log(d / d')``, as the tempo transitions of Krebs, Böck & Widmer 2015),
or of any beat there at ``jump_cost`` (a sudden tempo change). It is Ellis's (2007) beat DP with
the tempo in the state, so the tempo may change; in this semi-Markov form only beats need
backpointers (int8, frames x intervals), and a block of ``d_min`` frames is computed at once.
Beats are then placed between frames by a parabola through the activation.

**Meter.** Afterwards, from the beats: the bar length (2, 3 or 4) and phase whose downbeats stand
out most in harmonic change, bass onsets and onset strength (``estimate_meter``).

**No beat.** Too few onsets, a path that covers less than half the music, or onsets that do not
repeat at the tracked interval (``periodicity``) give a constant grid with no tempo and a reason.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from midiscribe.core.frames import FRAME_PERIOD_S, MIDI_OFFSET, frame_times_s
from midiscribe.core.outputs import ModelOutputs
from midiscribe.music.grid import BeatGrid, TimeSignature

__all__ = ["BeatOptions", "beat_activation", "track_beats"]

log = logging.getLogger("midiscribe")

Float = npt.NDArray[np.float64]

FPS = 50.0  # the activation's even grid: 20 ms (beats are then placed between frames)
ONSET_LATENCY_S = 0.005  # as core/notes.py: onset peaks come out 5 ms late on rendered audio
BASS_BELOW = 55  # MIDI G3: the bass register, whose onsets mark downbeats more often than not
_LEVEL_FLOOR = 0.1  # the activation of one clear onset; scarcer, fainter input is not scaled up to it
_AHEAD = 3  # frames after an onset in which its note must reach note_threshold
_CHUNK = 4096  # frames of the posteriorgrams worked at once (bounds the temporaries)


@dataclass(frozen=True, slots=True)
class BeatOptions:
    """Tracker settings: tempo range and prior (beats per minute), tempo-change penalty."""

    min_bpm: float = 40.0
    max_bpm: float = 240.0
    prior_bpm: float = 105.0
    prior_octaves: float = 1.0
    prior_weight: float = 1.0
    change_penalty: float = 40.0
    max_change: float = 0.06
    max_step_frames: int = 2
    jump_cost: float = 3.0
    beat_cost: float = 0.3
    onset_threshold: float = 0.3
    flux_threshold: float = 0.05
    flux_weight: float = 2.0
    note_threshold: float = 0.4
    bass_weight: float = 0.5
    meter_weights: tuple[float, float, float] = (1.0, 0.5, 0.25)


class Activation(NamedTuple):
    """The beat activation on an even ``FPS`` grid from 0 s (about 1.0 on a typical onset), the
    same from the bass register only (below MIDI ``BASS_BELOW``, for downbeats), and how many
    onsets and rises were counted."""

    act: Float
    bass: Float
    events: int


def beat_activation(outputs: ModelOutputs, options: BeatOptions | None = None) -> Activation:
    """Onset peaks and note rises of every pitch, where a note follows, placed at their times."""
    options = options or BeatOptions()
    n = outputs.n_frames
    times = frame_times_s(n)
    n_out = math.ceil(outputs.duration_s * FPS) + 2
    act = np.zeros(n_out, dtype=np.float64)
    bass = np.zeros(n_out, dtype=np.float64)
    counted = 0
    for lo in range(0, max(n - 2, 0), _CHUNK):
        hi = min(lo + _CHUNK, n - 2)
        sl = slice(lo, hi + 2)  # two frames of context: peaks are found in frames lo + 1 .. hi
        note = outputs.note[sl]
        # whether a note sounds just after each frame: onsets and rises that no note follows
        # are not counted (the onset head fires at hundreds of frames a second on noise)
        ahead = outputs.note[lo : min(hi + 2 + _AHEAD, n)]
        sounding = (
            np.lib.stride_tricks.sliding_window_view(
                np.concatenate([ahead, np.zeros((_AHEAD, ahead.shape[1]), ahead.dtype)]), _AHEAD + 1, axis=0
            )[: note.shape[0]].max(axis=2)
            >= options.note_threshold
        )
        rise = np.zeros_like(note)
        rise[1:] = note[1:] - note[:-1]
        if lo > 0:
            rise[0] = note[0] - outputs.note[lo - 1]
        for x, threshold, weight, shift in (
            (outputs.onset[sl], options.onset_threshold, 1.0, -ONSET_LATENCY_S),
            (rise, options.flux_threshold, options.flux_weight, 0.0),
        ):
            idx, w, pitch = _peaks(np.where(sounding, x, 0.0).astype(np.float32), times[sl], threshold, shift)
            np.add.at(act, np.minimum(idx, n_out - 1), weight * w)
            low = pitch < BASS_BELOW - MIDI_OFFSET
            np.add.at(bass, np.minimum(idx[low], n_out - 1), weight * w[low])
            counted += int(idx.size)
    return Activation(_smooth(act + options.bass_weight * bass), _smooth(bass), counted)


def _peaks(
    x: npt.NDArray[np.float32], times: Float, threshold: float, shift_s: float
) -> tuple[npt.NDArray[np.int64], Float, npt.NDArray[np.int64]]:
    """(activation frame, height above threshold, pitch index) of each local maximum of each
    column of ``x`` above ``threshold``, placed between frames by a parabola."""
    inner = x[1:-1]
    t, p = np.nonzero((inner > x[:-2]) & (inner >= x[2:]) & (inner > threshold))
    t = t + 1
    before, peak, after = x[t - 1, p], x[t, p], x[t + 1, p]
    den = before - 2 * peak + after
    offset = np.where(den < 0, 0.5 * (before - after) / np.where(den < 0, den, -1.0), 0.0)
    when = times[t] + offset * FRAME_PERIOD_S + shift_s
    idx = np.maximum(np.round(when * FPS).astype(np.int64), 0)
    return idx, (peak - threshold).astype(np.float64), p


def _smooth(act: Float) -> Float:
    """Compress (a chord counts more than a note, not ten times more), Gaussian 20 ms."""
    x = np.log1p(4.0 * act)
    k = np.exp(-0.5 * (np.arange(-3, 4) / (0.02 * FPS)) ** 2)
    x = np.convolve(x, k / k.sum(), mode="same")
    level = float(np.percentile(x[x > 1e-3], 90)) if np.count_nonzero(x > 1e-3) > 8 else 0.0
    return x / max(level, _LEVEL_FLOOR)


_JUMP = 63  # back code: the successor's tempo was reached by a jump from the best state here
_FIRST = 64  # back flag: the beat at this frame and state starts its path


def _states(options: BeatOptions) -> tuple[npt.NDArray[np.int64], Float]:
    """Beat interval in frames (every whole number in the tempo range) and log prior of each state."""
    d_min = max(2, math.floor(60.0 * FPS / options.max_bpm))
    d_max = math.ceil(60.0 * FPS / options.min_bpm)
    ds = np.arange(d_min, d_max + 1, dtype=np.int64)
    bpm = 60.0 * FPS / ds
    prior = -options.prior_weight * 0.5 * (np.log2(bpm / options.prior_bpm) / options.prior_octaves) ** 2
    return ds, prior


def decode_beats(act: Float, options: BeatOptions) -> list[int]:
    """Beat frames of ``act`` (empty if none): the DP over (beat frame, tempo state).

    A tempo state is a beat interval in whole frames. Memory: a ring of ``d_max + d_min`` frames of scores, one int8
    backpointer per frame and state (3.2 KB per second of audio at 50 frames a second, 40-240 bpm)
    and one int16 per frame.
    """
    ds, prior = _states(options)
    k_n = ds.size
    d_min, d_max = int(ds.min()), int(ds.max())
    band = options.max_step_frames
    offsets = np.arange(-band, band + 1)
    cols = np.arange(k_n)
    # trans[o, k]: entering state k from a beat in state k + offsets[o]
    src = cols[None, :] + offsets[:, None]
    ratio = np.abs(np.log(ds[np.clip(src, 0, k_n - 1)] / ds[None, :]))
    ok = (src >= 0) & (src < k_n) & (ratio <= options.max_change)
    trans = np.where(ok, -options.change_penalty * ratio, -np.inf).astype(np.float32)
    pad = np.full((d_min, k_n + 2 * band), -np.inf, dtype=np.float32)
    obs = (act - options.beat_cost).astype(np.float32)
    prior32 = prior.astype(np.float32)
    n = act.size
    ring = d_max + d_min
    enter = np.full((ring, k_n), -np.inf, dtype=np.float32)
    back = np.zeros((n, k_n), dtype=np.int8)
    jump_src = np.zeros(n, dtype=np.int16)
    best_score, best_at = 0.0, (-1, -1)
    for t0 in range(0, n, d_min):
        t1 = min(t0 + d_min, n)
        rows = np.arange(t0, t1)[:, None] - ds[None, :]
        from_prev = np.where(rows >= 0, enter[rows % ring, cols[None, :]], -np.inf)
        first = from_prev <= 0.0  # a new path beats continuing one that has lost
        score = obs[t0:t1, None] + prior32[None, :] + np.where(first, 0.0, from_prev)
        b = t1 - t0
        pad[:b, band:-band] = score
        cand = np.stack([pad[:b, o : o + k_n] for o in range(offsets.size)])  # (O, B, K)
        cand += trans[:, None, :]
        arg = cand.argmax(axis=0)
        best = cand.max(axis=0)
        jump_src[t0:t1] = score.argmax(axis=1)
        jump = score.max(axis=1, keepdims=True) - options.jump_cost
        jumped = jump > best
        enter[np.arange(t0, t1) % ring] = np.where(jumped, jump, best)
        code = np.where(jumped, _JUMP, arg) + np.where(first, _FIRST, 0)
        back[t0:t1] = code.astype(np.int8)
        i = int(np.argmax(score))
        if score.flat[i] > best_score:
            best_score, best_at = float(score.flat[i]), (t0 + i // k_n, i % k_n)
    if best_at[0] < 0:
        return []
    return _backtrack(back, jump_src, ds, offsets, best_at)


def _backtrack(
    back: npt.NDArray[np.int8],
    jump_src: npt.NDArray[np.int16],
    ds: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    at: tuple[int, int],
) -> list[int]:
    t, k = at
    beats = [t]
    while not int(back[t, k]) & _FIRST:
        p = t - int(ds[k])
        code = int(back[p, k]) & ~_FIRST
        k = int(jump_src[p]) if code == _JUMP else k + int(offsets[code])
        t = p
        beats.append(t)
    return beats[::-1]


_METERS = (2, 3, 4)
_FOUR_BIAS = 1.2  # 4/4 over 2/4 unless the 2/4 contrast is clearly larger: 4/4 is far more common


def beat_features(
    outputs: ModelOutputs, act: Float, bass: Float, beats: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """(beats, 3): harmonic change into each beat, bass onset and onset strength at it, z-scored."""
    near = np.clip(beats[:, None] + np.arange(-3, 4)[None, :], 0, act.size - 1)
    accent = act[near].max(axis=1)
    low = bass[near].max(axis=1)
    chroma = _beat_chroma(outputs, beats)
    norm = np.linalg.norm(chroma, axis=1, keepdims=True)
    unit = chroma / np.maximum(norm, 1e-9)
    change = np.zeros(beats.size)
    change[1:] = 1.0 - np.sum(unit[1:] * unit[:-1], axis=1)
    feats = np.stack([change, low, accent], axis=1)
    sd = feats.std(axis=0)
    z: npt.NDArray[np.float64] = (feats - feats.mean(axis=0)) / np.where(sd > 1e-9, sd, 1.0)
    return z


def _beat_chroma(outputs: ModelOutputs, beats: npt.NDArray[np.int64]) -> Float:
    """Pitch-class energy of the note posteriorgram over each beat's span (beat i to i + 1)."""
    n = outputs.n_frames
    shift = MIDI_OFFSET % 12  # column p + shift of a 12-wide fold is pitch class (p + MIDI_OFFSET) % 12
    width = -(-(outputs.note.shape[1] + shift) // 12) * 12
    pc = np.zeros((n + 1, 12), dtype=np.float32)  # 48 bytes a frame
    padded = np.zeros((_CHUNK, width), dtype=np.float32)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        padded[: hi - lo, shift : shift + outputs.note.shape[1]] = np.maximum(outputs.note[lo:hi] - 0.15, 0.0)
        pc[lo:hi] = padded[: hi - lo].reshape(hi - lo, -1, 12).sum(axis=1)
    starts = np.searchsorted(frame_times_s(n), beats.astype(np.float64) / FPS)
    out: Float = np.add.reduceat(pc, np.minimum(starts, n), axis=0).astype(np.float64)
    out[starts >= n] = 0.0
    return out


def estimate_meter(feats: npt.NDArray[np.float64], weights: tuple[float, float, float]) -> tuple[int, int, float]:
    """(beats per bar, index of the first downbeat, contrast): the bar length and phase whose
    downbeats stand out most from the other beats, in the weighted features."""
    f = feats @ np.asarray(weights)
    best = (4, 0, -np.inf)
    for m in _METERS:
        if f.size < 2 * m:
            continue
        for phase in range(m):
            on = f[phase::m]
            mask = np.ones(f.size, dtype=bool)
            mask[phase::m] = False
            contrast = float(on.mean() - f[mask].mean()) * (_FOUR_BIAS if m == 4 else 1.0)
            if contrast > best[2]:
                best = (m, phase, contrast)
    return best


def track_beats(outputs: ModelOutputs, options: BeatOptions | None = None, *, fallback_bpm: float = 120.0) -> BeatGrid:
    """The beat grid of a recording from its model outputs.

    The grid covers the whole recording: the tracked beats, extended at their first and last
    tempo to the start and the end, so that less than about one beat precedes the first beat.
    When no steady beat is heard (silence, noise, a drone, speech), a constant ``fallback_bpm``
    grid in 4/4 with ``tempo_bpm`` None and the reason.
    """
    options = options or BeatOptions()
    act, bass, events = beat_activation(outputs, options)
    frames = np.asarray(decode_beats(act, options), dtype=np.int64)
    reason = _no_beat_reason(act, events, frames)
    if reason is not None:
        log.info("beat grid: %s; a constant %.1f bpm grid", reason, fallback_bpm)
        return BeatGrid.constant(fallback_bpm, outputs.duration_s, reason=reason)
    feats = beat_features(outputs, act, bass, frames)
    per_bar, phase, _ = estimate_meter(feats, options.meter_weights)
    tracked = _steady(_refine(act, frames) / FPS)
    beats, added = _extend(tracked, outputs.duration_s)
    bpm = 60.0 / float(np.median(np.diff(tracked)))
    return BeatGrid(
        beats_s=tuple(float(b) for b in beats),
        time_signature=TimeSignature(per_bar, 4),
        first_downbeat=(phase + added) % per_bar,
        tempo_bpm=round(bpm, 2),
    )


MIN_BEATS = 8  # fewer tracked beats than this is not a steady beat
MIN_PERIODICITY = 0.12  # music on the eval set: 0.18-0.78; onsets at random times (3-12 a second): under 0.08
MIN_COVER = 0.5  # ... nor is one that spans less than half of the time notes are heard


def _no_beat_reason(act: Float, events: int, frames: npt.NDArray[np.int64]) -> str | None:
    active = np.nonzero(act > 0.05)[0]
    if events < MIN_BEATS or active.size == 0:
        return "no note onsets heard"
    if frames.size < MIN_BEATS:
        return "no steady beat heard"
    span = (active[-1] - active[0]) or 1
    if (frames[-1] - frames[0]) / span < MIN_COVER:
        return "no steady beat heard over most of the recording"
    if periodicity(act, frames) < MIN_PERIODICITY:
        return "the onsets do not repeat at the beat (no steady beat heard)"
    return None


def periodicity(act: Float, frames: npt.NDArray[np.int64]) -> float:
    """The activation's autocorrelation at the tracked beat interval, frame by frame (so it
    follows tempo changes), over the tracked span: about 0 for onsets at random times."""
    lo, hi = int(frames[0]), int(frames[-2])
    t = np.arange(lo, hi)
    seg = np.searchsorted(frames, t, side="right") - 1
    lag = (frames[seg + 1] - frames[seg]).astype(np.int64)
    x = act[lo : int(frames[-1]) + 3] - act[lo : int(frames[-1]) + 3].mean()
    energy = float(np.dot(x, x))
    if energy <= 0:
        return 0.0
    i = t - lo
    return max(float(np.dot(x[i], x[np.minimum(i + lag + j, x.size - 1)])) for j in (-2, -1, 0, 1, 2)) / energy


def _refine(act: Float, frames: npt.NDArray[np.int64]) -> Float:
    """Beat frames placed between frames by a parabola through the activation (a beat on a peak
    moves by up to half a frame; one on a slope or in silence stays)."""
    f = np.clip(frames, 1, act.size - 2)
    before, peak, after = act[f - 1], act[f], act[f + 1]
    den = before - 2 * peak + after
    offset = np.where(den < 0, 0.5 * (before - after) / np.where(den < 0, den, -1.0), 0.0)
    out = f + np.clip(offset, -0.5, 0.5)
    # strictly increasing whatever the activation (beats are at least d_min frames apart)
    return np.maximum.accumulate(out + 1e-6 * np.arange(out.size))


STEADY = 0.1  # adjacent beat intervals this close (relative) are one tempo: jitter is smoothed away


def _steady(beats: Float) -> Float:
    """Beats whose two intervals agree within ``STEADY`` moved a quarter of the way to the middle
    of their neighbours: onset jitter no longer makes the tempo map flicker, and a real tempo
    change (intervals that differ more) is left as it is."""
    out = beats.copy()
    if beats.size < 3:
        return out
    before, after = np.diff(beats)[:-1], np.diff(beats)[1:]
    calm = np.abs(after - before) < STEADY * np.minimum(before, after)
    mid = (beats[:-2] + 2 * beats[1:-1] + beats[2:]) / 4
    out[1:-1] = np.where(calm, mid, beats[1:-1])
    return out


def _extend(beats: Float, duration_s: float) -> tuple[Float, int]:
    """``beats`` extended back to the start and on to the end at the first and last interval;
    and how many beats were added before. The span left before the first beat is 0.25-1.25 beats."""
    first = beats[1] - beats[0]
    before = max(0, math.floor((beats[0] - 0.25 * first) / first))
    head = beats[0] - first * np.arange(before, 0, -1)
    last = beats[-1] - beats[-2]
    after = max(0, math.ceil((duration_s - beats[-1]) / last))
    tail = beats[-1] + last * np.arange(1, after + 1)
    return np.concatenate([head, beats, tail]), before
