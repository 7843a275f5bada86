"""Note creation on dense input: midiscribe's linear-time decoder vs basic-pitch 0.4.0's.

basic-pitch's melodia pass takes an arg-max over the whole remaining-energy matrix per note,
so its decoder goes quadratic on dense input. This feeds both decoders the same noisy
posteriorgrams of a 4-minute recording (``--minutes``) and prints their times and note counts.

    .venv/bin/python bench/decoder.py --minutes 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from midiscribe.core.frames import N_PITCHES, n_frames_for
from midiscribe.core.notes import decode_frames
from midiscribe.core.outputs import ModelOutputs
from midiscribe.core.results import NoteOptions


def noisy(minutes: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Posteriorgrams of dense noise: many cells just above the frame threshold."""
    rng = np.random.default_rng(seed)
    n = n_frames_for(int(minutes * 60 * 22_050))
    note = rng.uniform(0.0, 0.6, (n, N_PITCHES)).astype(np.float32)
    onset = rng.uniform(0.0, 0.55, (n, N_PITCHES)).astype(np.float32)
    return note, onset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--skip-basic-pitch", action="store_true")
    args = parser.parse_args()
    note, onset = noisy(args.minutes)
    outputs = ModelOutputs(note=note, onset=onset, bend_bins=np.zeros(note.shape, np.int8))
    t0 = time.perf_counter()
    ours = decode_frames(outputs, NoteOptions())
    t_ours = time.perf_counter() - t0
    print(f"{args.minutes:g} min of dense noise, {note.shape[0]} frames x {N_PITCHES} pitches")
    print(f"midiscribe decoder:  {t_ours:8.2f} s  {len(ours)} notes")
    if args.skip_basic_pitch:
        return
    from basic_pitch import note_creation

    t0 = time.perf_counter()
    ref = note_creation.output_to_notes_polyphonic(
        note.copy(),
        onset.copy(),
        onset_thresh=0.5,
        frame_thresh=0.3,
        min_note_len=11,
        infer_onsets=True,
        max_freq=None,
        min_freq=None,
        melodia_trick=True,
    )
    t_bp = time.perf_counter() - t0
    same = sorted((s, e, p) for s, e, p, *_ in ours) == sorted((int(s), int(e), int(p)) for s, e, p, _ in ref)
    print(f"basic-pitch decoder: {t_bp:8.2f} s  {len(ref)} notes")
    print(f"speed-up: {t_bp / t_ours:.1f}x   same notes: {same}")


if __name__ == "__main__":
    main()
