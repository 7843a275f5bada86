"""Note creation on small synthetic posteriorgrams whose right answer is obvious,
and equivalence with basic-pitch's own decoder on random ones."""

from __future__ import annotations

import numpy as np
import pytest

from midiscribe.core.frames import FRAME_PERIOD_S, N_PITCHES
from midiscribe.core.notes import (
    ONSET_LATENCY_S,
    decode_frames,
    min_note_frames,
    notes_from_outputs,
    pitch_range,
)
from midiscribe.core.outputs import ModelOutputs, bend_bins_from_contour
from midiscribe.core.presets import preset_note_options
from midiscribe.core.results import NoteOptions
from midiscribe.errors import OptionsError


def outputs(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, N_PITCHES), np.float32), np.zeros((n, N_PITCHES), np.float32)


def make(note: np.ndarray, onset: np.ndarray, bends: np.ndarray | None = None) -> ModelOutputs:
    if bends is None:
        bends = np.zeros(note.shape, np.int8)
    return ModelOutputs(note=note, onset=onset, bend_bins=bends)


def test_one_onset_one_note() -> None:
    note, onset = outputs()
    note[20:60, 39] = 0.8  # MIDI 60
    onset[19:22, 39] = [0.3, 0.9, 0.3]
    found = decode_frames(make(note, onset), NoteOptions(melodia_trick=False))
    assert [f[:4] for f in found] == [(20, 60, 60, pytest.approx(0.8))]


def test_note_times_are_exact_frame_times() -> None:
    note, onset = outputs()
    note[20:60, 39] = 0.8
    onset[19:22, 39] = [0.3, 0.9, 0.3]
    (n,) = notes_from_outputs(make(note, onset))
    assert n.start_s == pytest.approx(20 * FRAME_PERIOD_S - ONSET_LATENCY_S)
    assert n.end_s == pytest.approx(60 * FRAME_PERIOD_S)  # the latency correction is for onsets
    assert n.pitch == 60 and n.velocity == round(127 * 0.8)


def test_melodia_finds_note_without_onset() -> None:
    note, onset = outputs()
    note[50:100, 48] = 0.6
    assert decode_frames(make(note, onset), NoteOptions(melodia_trick=False)) == []
    (found,) = decode_frames(make(note, onset), NoteOptions())
    # basic-pitch's melodia pass grows from the strongest cell and ends one frame early.
    assert found[2] == 48 + 21 and found[0] == 50 and found[1] == 99


def test_short_notes_are_dropped() -> None:
    note, onset = outputs()
    min_len = min_note_frames(127.7, FRAME_PERIOD_S)
    assert min_len == 11
    note[20:31, 10] = 0.9  # 11 frames: too short
    onset[20, 10] = 0.9
    note[100:112, 20] = 0.9  # 12 frames: kept
    onset[100, 20] = 0.9
    found = decode_frames(make(note, onset), NoteOptions(min_note_length_ms=127.7))
    assert [f[2] for f in found] == [20 + 21]


def test_gap_shorter_than_tolerance_does_not_end_a_note() -> None:
    note, onset = outputs()
    note[20:50, 30] = 0.9
    note[55:80, 30] = 0.9  # 5 frames below threshold: still one note
    onset[20, 30] = 0.9
    found = decode_frames(make(note, onset), NoteOptions(melodia_trick=False, infer_onsets=False))
    assert [(s, e) for s, e, _, _, _ in found] == [(20, 80)]
    # With inferred onsets the sharp rise at frame 55 starts a second note, as in basic-pitch.
    found = decode_frames(make(note, onset), NoteOptions(melodia_trick=False))
    assert sorted((s, e) for s, e, _, _, _ in found) == [(20, 50), (55, 80)]


def test_frequency_limits() -> None:
    note, onset = outputs()
    for col in (10, 40, 80):
        note[20:60, col] = 0.9
        onset[20, col] = 0.9
    opts = NoteOptions(min_frequency_hz=100.0, max_frequency_hz=1000.0)
    lo, hi = pitch_range(opts)
    found = decode_frames(make(note, onset), opts)
    assert {f[2] - 21 for f in found} == {40}
    assert lo <= 40 < hi


def test_silence_gives_no_notes_and_no_nan() -> None:
    note, onset = outputs(500)
    assert notes_from_outputs(make(note, onset)) == ()


def test_bends_in_cents() -> None:
    note, onset = outputs()
    note[20:60, 39] = 0.8
    onset[20, 39] = 0.9
    bends = np.zeros(note.shape, np.int8)
    bends[20:60, 39] = np.repeat([0, 1, 2, -1], 10)
    (n,) = notes_from_outputs(make(note, onset, bends))
    assert n.bends_cents == (0,) * 10 + (33,) * 10 + (67,) * 10 + (-33,) * 10
    (plain,) = notes_from_outputs(make(note, onset, bends), NoteOptions(pitch_bends=False))
    assert plain.bends_cents == ()


def test_bend_bins_are_centred_on_the_pitch() -> None:
    # A contour peaked on the bin of MIDI 60 (3 * (60 - 21) + 1) means no bend; one bin up is +1.
    contour = np.zeros((3, 264), np.float32)
    contour[0, 3 * 39 + 1] = 1.0
    contour[1, 3 * 39 + 2] = 1.0
    contour[2, 3 * 39 - 2] = 1.0
    bins = bend_bins_from_contour(contour)
    assert list(bins[:, 39]) == [0, 1, -3]
    # Edges: pitch 0 (A0) and 87 (C8) still get a valid answer.
    contour[0, 0] = 5.0
    assert bend_bins_from_contour(contour)[0, 0] == -1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"onset_threshold": 1.5},
        {"frame_threshold": -0.1},
        {"min_note_length_ms": -1},
        {"min_frequency_hz": 0},
        {"min_frequency_hz": 500.0, "max_frequency_hz": 100.0},
    ],
)
def test_options_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(OptionsError):
        NoteOptions(**kwargs)  # type: ignore[arg-type]


def _random_posteriorgrams(seed: int, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random activations: blobs of notes with onsets, noise, and near-threshold values."""
    rng = np.random.default_rng(seed)
    note = (rng.random((n, N_PITCHES)) * 0.25).astype(np.float32)
    onset = (rng.random((n, N_PITCHES)) * 0.3).astype(np.float32)
    for _ in range(120):
        f = int(rng.integers(0, N_PITCHES))
        s = int(rng.integers(0, n - 5))
        e = min(n, s + int(rng.integers(3, 120)))
        note[s:e, f] = rng.uniform(0.25, 1.0, e - s)
        if rng.random() < 0.7:
            onset[s, f] = rng.uniform(0.4, 1.0)
    return note, onset


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("melodia", [True, False])
def test_same_notes_as_basic_pitch_decoder(seed: int, melodia: bool) -> None:
    """Our linear-time decoder gives exactly basic-pitch 0.4.0's notes (reference only, in tests)."""
    bp_notes = pytest.importorskip("basic_pitch.note_creation", reason="basic-pitch reference not installed")
    note, onset = _random_posteriorgrams(seed)
    opts = preset_note_options("basic-pitch", melodia_trick=melodia, min_frequency_hz=50.0 if seed == 3 else None)
    ref = bp_notes.output_to_notes_polyphonic(
        note.copy(),
        onset.copy(),
        onset_thresh=0.5,
        frame_thresh=0.3,
        min_note_len=11,
        infer_onsets=True,
        max_freq=None,
        min_freq=opts.min_frequency_hz,
        melodia_trick=melodia,
    )
    ours = decode_frames(make(note, onset), opts)
    assert len(ref) > 20
    assert sorted((int(s), int(e), int(p), round(float(a), 5)) for s, e, p, a in ref) == sorted(
        (s, e, p, round(a, 5)) for s, e, p, a, _ in ours
    )


def test_bends_are_only_worked_out_above_the_floor() -> None:
    from midiscribe.core.outputs import BEND_FLOOR

    rng = np.random.default_rng(3)
    contour = rng.random((50, 264)).astype(np.float32)
    note = rng.uniform(0.05, 0.3, (50, N_PITCHES)).astype(np.float32)
    full, sparse = bend_bins_from_contour(contour), bend_bins_from_contour(contour, note)
    on = note >= BEND_FLOOR
    assert on.any() and (~on).any()
    np.testing.assert_array_equal(sparse[on], full[on])
    assert not sparse[~on].any()
