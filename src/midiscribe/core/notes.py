"""Posteriorgrams -> notes, equivalent to basic-pitch's decoder at its settings, in linear time.

basic-pitch (``note_creation.output_to_notes_polyphonic``) finds notes from onset peaks,
then repeatedly takes the arg-max of the whole remaining-energy matrix to add notes that
have no onset ("melodia trick"): one full-matrix scan per note, quadratic on dense input.
Here the remaining-energy matrix is only ever zeroed, so its arg-max is always the first
not-yet-zeroed cell of one sort of the initial values: the same notes from one sort. The
per-frame scans for "11 frames below threshold" run as ``bytes.find`` on one byte per
cell. Silence gives no notes and no NaN.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from midiscribe.core.bends import clean_bends
from midiscribe.core.frames import MIDI_OFFSET, N_PITCHES, FloatArray, frame_times_s
from midiscribe.core.outputs import ModelOutputs
from midiscribe.core.results import Note, NoteOptions

ENERGY_TOLERANCE = 11  # frames below threshold that end a note (basic-pitch's energy_tol)
_GAP = bytes(ENERGY_TOLERANCE)
_CHUNK = 1 << 16
# The model's onset latency on rendered audio with exact ground truth: on the 9 "synth"
# items of ../shared/eval, matched onsets come out a median 5.4 ms late on the exact frame
# grid, with sub-frame onsets (bench/accuracy.py prints it). Subtracted from note starts only:
# ends are late already (+25 ms median on the same items, release tails in the renders), and
# an earlier end loses as many offset matches on real recordings as it wins on renders.
ONSET_LATENCY_S = 0.005


class Found(NamedTuple):
    """A note in frames: [start, end) frames, MIDI pitch, mean activation.

    ``start_offset`` (-0.5..0.5 frames) places the onset between frames, from a parabola
    through the onset activation around its peak: frames are 11.6 ms apart, and this
    halves the spread of onset times on synthetic tones.
    """

    start: int
    end: int
    pitch: int
    amplitude: float
    start_offset: float = 0.0


def min_note_frames(min_note_length_ms: float, frame_period_s: float) -> int:
    """basic-pitch's conversion: round(ms / 1000 * frames per second)."""
    return round(min_note_length_ms / 1000 / frame_period_s)


def pitch_range(options: NoteOptions) -> tuple[int, int]:
    """Columns [lo, hi) kept by the frequency limits, as basic-pitch rounds them."""
    lo, hi = 0, N_PITCHES
    if options.max_frequency_hz is not None:
        hi = round(_hz_to_midi(options.max_frequency_hz) - MIDI_OFFSET)
    if options.min_frequency_hz is not None:
        lo = round(_hz_to_midi(options.min_frequency_hz) - MIDI_OFFSET)
    return max(0, lo), min(N_PITCHES, max(0, hi))


def _hz_to_midi(hz: float) -> float:
    return 12.0 * math.log2(hz / 440.0) + 69.0


def _frame_rise(col: FloatArray) -> npt.NDArray[np.float64]:
    """min over n = 1, 2 of the rise col[t] - col[t - n], clipped at 0 (basic-pitch's frame diff)."""
    x = col.astype(np.float64)
    d1 = x.copy()
    d1[1:] -= x[:-1]
    d2 = x.copy()
    d2[2:] -= x[:-2]
    diff = np.minimum(d1, d2)
    diff[diff < 0] = 0
    diff[:2] = 0
    return diff


def onset_peaks(
    note: FloatArray, onset: FloatArray, options: NoteOptions, lo: int, hi: int
) -> list[tuple[int, int, float]]:
    """(frame, pitch index, sub-frame offset) of onset peaks at or above threshold, latest first.

    With ``infer_onsets`` the onset activation is raised by large rises in frame
    activation, scaled to the onsets' maximum, as basic-pitch does. Works a column at a
    time so memory stays at one column of float64.
    """
    if hi <= lo:
        return []
    onset_max = float(onset[:, lo:hi].max())
    rise_max = max(float(_frame_rise(note[:, f]).max()) for f in range(lo, hi)) if options.infer_onsets else 0.0
    ts, fs, ds = [], [], []
    for f in range(lo, hi):
        act = onset[:, f].astype(np.float64)
        if options.infer_onsets and rise_max > 0:  # basic-pitch divides by zero here on silence
            act = np.maximum(act, onset_max * _frame_rise(note[:, f]) / rise_max)
        inner = act[1:-1]
        t = np.nonzero((inner > act[:-2]) & (inner > act[2:]) & (inner >= options.onset_threshold))[0] + 1
        before, peak, after = act[t - 1], act[t], act[t + 1]
        ts.append(t)
        fs.append(np.full(t.size, f))
        ds.append(0.5 * (before - after) / (before - 2 * peak + after))  # peak is strict: denominator < 0
    t_all, f_all, d_all = np.concatenate(ts), np.concatenate(fs), np.concatenate(ds)
    order = np.lexsort((-f_all, -t_all))
    return list(zip(t_all[order].tolist(), f_all[order].tolist(), d_all[order].tolist(), strict=True))


class _Energy:
    """Which cells of the remaining-energy matrix are still at or above threshold, a byte each."""

    def __init__(self, note: FloatArray, threshold: float, lo: int, hi: int) -> None:
        self.n = note.shape[0]
        self.cols = [bytearray(self.n) for _ in range(N_PITCHES)]
        for f in range(lo, hi):
            self.cols[f] = bytearray((note[:, f].astype(np.float64) >= threshold).astype(np.uint8).tobytes())
        if threshold <= 0:  # zeroed cells outside the range still count as "above"
            for f in [*range(lo), *range(hi, N_PITCHES)]:
                self.cols[f] = bytearray(b"\x01" * self.n)

    def clear(self, start: int, end: int, f: int) -> None:
        if end <= start:
            return
        zeros = bytes(end - start)
        for g in (f - 1, f, f + 1):
            if 0 <= g < N_PITCHES:
                self.cols[g][start:end] = zeros

    def end_after(self, f: int, start: int) -> tuple[int, int]:
        """basic-pitch's forward scan from ``start``: (exit index, trailing frames below)."""
        col, last = self.cols[f], self.n - 1
        if start >= last:
            return start, 0
        p = col.find(_GAP, start, last)
        if p >= 0:
            return p + ENERGY_TOLERANCE, ENERGY_TOLERANCE
        q = col.rfind(b"\x01", start, last)
        return last, last - (q + 1 if q >= 0 else start)

    def start_before(self, f: int, stop: int) -> tuple[int, int]:
        """basic-pitch's backward scan from ``stop - 1`` down to 1: (exit index, frames below)."""
        col = self.cols[f]
        if stop - 1 <= 0:
            return stop - 1, 0
        p = col.rfind(_GAP, 1, stop)
        if p >= 0:
            return p - 1, ENERGY_TOLERANCE
        q = col.find(b"\x01", 1, stop)
        return 0, (q - 1 if q >= 0 else stop - 1)


def decode_frames(outputs: ModelOutputs, options: NoteOptions) -> list[Found]:
    """Notes in frames, in basic-pitch's order of discovery."""
    note, n = outputs.note, outputs.n_frames
    if n < 3:
        return []
    lo, hi = pitch_range(options)
    min_len = min_note_frames(options.min_note_length_ms, outputs.frame_period_s)
    energy = _Energy(note, options.frame_threshold, lo, hi)
    found: list[Found] = []
    for start, f, offset in onset_peaks(note, outputs.onset, options, lo, hi):
        if start >= n - 1:
            continue
        i, below = energy.end_after(f, start + 1)
        end = i - below
        if end - start <= min_len:
            continue
        energy.clear(start, end, f)
        found.append(Found(start, end, f + MIDI_OFFSET, float(np.mean(note[start:end, f])), offset))
    if options.melodia_trick:
        found.extend(_melodia(note, energy, options.frame_threshold, min_len, lo, hi))
    return found


def _melodia(note: FloatArray, energy: _Energy, threshold: float, min_len: int, lo: int, hi: int) -> list[Found]:
    """Notes grown from the strongest remaining cells, strongest first (basic-pitch's order)."""
    times, pitches, values = [], [], []
    for f in range(lo, hi):
        alive = np.frombuffer(energy.cols[f], dtype=np.uint8).astype(bool)
        t = np.nonzero((note[:, f].astype(np.float64) > threshold) & alive)[0].astype(np.int32)
        times.append(t)
        pitches.append(np.full(t.size, f, dtype=np.int32))
        values.append(note[t, f])
    if not times:
        return []
    t_all, f_all, v_all = np.concatenate(times), np.concatenate(pitches), np.concatenate(values)
    del times, pitches, values
    # arg-max order: strongest first, ties in flat (time-major) index order
    order = np.lexsort((t_all.astype(np.int64) * N_PITCHES + f_all, -v_all.astype(np.float64)))
    found: list[Found] = []
    cols = energy.cols
    for k in range(0, order.size, _CHUNK):  # Python ints a chunk at a time: memory stays flat
        part = order[k : k + _CHUNK]
        for t_mid, f in zip(t_all[part].tolist(), f_all[part].tolist(), strict=True):
            if not cols[f][t_mid]:
                continue
            cols[f][t_mid] = 0
            i, below = energy.end_after(f, t_mid + 1)
            energy.clear(t_mid + 1, i, f)
            end = i - 1 - below
            j, below = energy.start_before(f, t_mid)
            energy.clear(j + 1, t_mid, f)
            start = j + 1 + below
            if end - start <= min_len:
                continue
            found.append(Found(start, end, f + MIDI_OFFSET, float(np.mean(note[start:end, f]))))
    return found


def notes_from_outputs(outputs: ModelOutputs, options: NoteOptions | None = None) -> tuple[Note, ...]:
    """Notes from posteriorgrams, sorted by start time then pitch."""
    options = options or NoteOptions()
    found = decode_frames(outputs, options)
    times = frame_times_s(outputs.n_frames + 1)
    notes = []
    for start, end, pitch, amplitude, offset in found:
        bends: tuple[int, ...] = ()
        if options.pitch_bends:
            bends = clean_bends(outputs.bend_bins[start:end, pitch - MIDI_OFFSET])
        notes.append(
            Note(
                start_s=max(0.0, float(times[start]) + offset * outputs.frame_period_s - ONSET_LATENCY_S),
                end_s=float(times[end]),
                pitch=pitch,
                amplitude=amplitude,
                bends_cents=bends,
            )
        )
    notes.sort(key=lambda x: (x.start_s, x.pitch, x.end_s))
    return tuple(notes)
