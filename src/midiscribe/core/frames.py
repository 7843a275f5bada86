"""Windows, overlap and exact frame times for the basic-pitch model family.

The model sees windows of 43,844 samples at 22,050 Hz and returns 172 frames per window,
frame ``f`` centred on sample ``256 * f`` of its window. Windows advance by 43,844 - 30 * 256
= 36,164 samples, as basic-pitch's do, so the model sees exactly what it sees in
basic-pitch; the 15 frames at each edge are dropped and the middle 142 kept. 36,164 is not
a whole number of frames: basic-pitch nevertheless treats the kept frames as evenly spaced
at 86 per second (22050 // 256) with a "magic" correction, so its notes drift over long
files and its tail is cut. Here every frame gets its exact time, and every frame whose
centre lies inside the input is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 22_050
HOP = 256
WINDOW_SAMPLES = 43_844
WINDOW_FRAMES = 172
OVERLAP_FRAMES = 30
EDGE_FRAMES = OVERLAP_FRAMES // 2  # frames dropped at each edge of a window
KEPT_FRAMES = WINDOW_FRAMES - OVERLAP_FRAMES  # 142
STEP_SAMPLES = WINDOW_SAMPLES - OVERLAP_FRAMES * HOP  # 36,164
LEAD_PAD = EDGE_FRAMES * HOP  # zeros before the audio so that frame 0 is centred on sample 0
FRAME_PERIOD_S = HOP / SAMPLE_RATE  # within a window; windows join 68 samples closer
N_PITCHES = 88
MIDI_OFFSET = 21  # MIDI pitch of the lowest bin (A0, 27.5 Hz)
CONTOUR_BINS_PER_SEMITONE = 3

FloatArray = npt.NDArray[np.float32]


def n_windows_for(n_samples: int) -> int:
    return 0 if n_samples <= 0 else -(-n_samples // STEP_SAMPLES)


def n_frames_for(n_samples: int) -> int:
    """Kept frames whose centre lies inside ``n_samples`` samples."""
    windows = n_windows_for(n_samples)
    if windows == 0:
        return 0
    last = n_samples - (windows - 1) * STEP_SAMPLES
    return (windows - 1) * KEPT_FRAMES + min(KEPT_FRAMES, -(-last // HOP))


def frame_samples(frame_index: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Input sample on which each kept frame is centred."""
    window, k = np.divmod(frame_index, KEPT_FRAMES)
    out: npt.NDArray[np.int64] = window * STEP_SAMPLES + k * HOP
    return out


def frame_times_s(n_frames: int) -> npt.NDArray[np.float64]:
    """Exact time of each kept frame, in seconds."""
    out: npt.NDArray[np.float64] = frame_samples(np.arange(n_frames, dtype=np.int64)) / SAMPLE_RATE
    return out


def windows(chunks: Iterable[FloatArray]) -> Iterator[FloatArray]:
    """Cut a stream of mono 22,050 Hz chunks into the model's overlapping windows.

    Memory is one window plus one chunk. The last window is zero-padded. Yields nothing
    for an empty stream.
    """
    buf = np.zeros(LEAD_PAD, dtype=np.float32)
    total = 0
    for chunk in chunks:
        if chunk.size == 0:
            continue
        total += chunk.size
        buf = np.concatenate([buf, chunk.astype(np.float32, copy=False)])
        while buf.size >= WINDOW_SAMPLES:
            yield buf[:WINDOW_SAMPLES].copy()
            buf = buf[STEP_SAMPLES:]
    if total == 0:
        return
    emitted = (total + LEAD_PAD - buf.size) // STEP_SAMPLES
    for _ in range(n_windows_for(total) - emitted):
        window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        window[: min(buf.size, WINDOW_SAMPLES)] = buf[:WINDOW_SAMPLES]
        yield window
        buf = buf[STEP_SAMPLES:]
