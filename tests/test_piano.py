"""The piano model (issue 10): Transkun 2.0 end to end on a short rendered clip, and its parts.

The network runs for real (torch's CPU build and ``transkun`` from the ``piano`` extra, which
``make test`` installs); without them those tests skip and say so. Our replacements of Transkun's
code (mel filterbank, interval scores, Viterbi, segment loop) are checked against Transkun's own.
The sustain pedal's MIDI, CSV and notation forms are pure and always run.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest

from midiscribe.core.pedal import pedal_end_s, sustained_notes
from midiscribe.core.registry import MODELS
from midiscribe.core.results import Note, NoteOptions, Pedal, Transcription
from midiscribe.formats.midi import to_midi, write_midi
from midiscribe.formats.notes_csv import read_notes_csv, write_notes_csv

PIANO = MODELS["piano"].installed()
needs_piano = pytest.mark.skipif(
    not PIANO,
    reason=f"torch/transkun missing: `make test` installs them ({MODELS['piano'].install_hint})",
)
EXE = Path(sys.executable).with_name("midiscribe")

# (start_s, end_s, pitch): a C major arpeggio, then a chord, played under one pedal press
PLAYED = [(0.30, 0.60, 60), (0.70, 1.00, 64), (1.10, 1.40, 67), (1.60, 2.40, 72), (1.60, 2.40, 76)]
PEDAL = (0.25, 2.0)


def transcription(notes: list[tuple[float, float, int]], pedals: tuple[Pedal, ...] = ()) -> Transcription:
    return Transcription(
        notes=tuple(Note(s, e, p, 0.7) for s, e, p in notes),
        duration_s=3.0,
        frame_period_s=1024 / 44100,
        pedals=pedals,
    )


# --- the pedal in MIDI, CSV and notation (pure) ---


def test_pedal_is_cc64_on_every_instrument_track() -> None:
    tr = transcription(PLAYED, (Pedal(0.25, 2.0), Pedal(2.5, 2.9)))
    for per_pitch in (False, True):
        from midiscribe.formats.midi import MidiOptions

        midi = to_midi(tr, MidiOptions(multiple_pitch_bends=per_pitch))
        for track in midi.tracks[1:]:
            now, presses = 0, []
            for msg in track:
                now += msg.time
                if msg.type == "control_change" and msg.control == 64:
                    presses.append((round(mido.tick2second(now, 480, 500_000), 3), msg.value))
            assert presses == [(0.25, 127), (2.0, 0), (2.5, 127), (2.9, 0)]


def test_pedal_survives_a_midi_round_trip_and_notes_stay_as_played(tmp_path: Path) -> None:
    import pretty_midi

    path = tmp_path / "p.mid"
    write_midi(transcription(PLAYED, (Pedal(*PEDAL),)), path)
    pm = pretty_midi.PrettyMIDI(str(path))
    ccs = [(round(c.time, 3), c.value) for c in pm.instruments[0].control_changes if c.number == 64]
    assert ccs == [(0.25, 127), (2.0, 0)]
    ends = sorted(round(n.end, 3) for n in pm.instruments[0].notes)
    assert ends == sorted(e for _, e, _ in PLAYED)  # not lengthened by the pedal


def test_pedal_extends_notes_to_its_release_but_not_past_a_repeat() -> None:
    pedals = [Pedal(0.5, 2.0)]
    notes = [Note(0.0, 0.4, 60, 0.5), Note(0.6, 0.8, 62, 0.5), Note(1.0, 1.2, 62, 0.5), Note(1.5, 2.5, 64, 0.5)]
    held = sustained_notes(notes, pedals)
    assert [(n.start_s, n.end_s) for n in held] == [(0.0, 0.4), (0.6, 1.0), (1.0, 2.0), (1.5, 2.5)]
    assert pedal_end_s(0.7, pedals) == 2.0 and pedal_end_s(0.4, pedals) == 0.4 and pedal_end_s(2.0, pedals) == 2.0
    assert sustained_notes(notes, []) == tuple(notes)


def test_csv_pedal_field_is_an_option() -> None:
    tr = transcription(PLAYED, (Pedal(*PEDAL),))
    plain, pedal = io.StringIO(), io.StringIO()
    write_notes_csv(tr, plain)
    write_notes_csv(tr, pedal, pedal=True)
    assert "pedal_end_s" not in plain.getvalue().splitlines()[0]
    rows = list(csv.DictReader(io.StringIO(pedal.getvalue())))
    assert [(float(r["end_s"]), float(r["pedal_end_s"])) for r in rows] == [
        (0.6, 2.0),
        (1.0, 2.0),
        (1.4, 2.0),
        (2.4, 2.4),  # released after the pedal came up
        (2.4, 2.4),
    ]
    assert [n.end_s for n in read_notes_csv(io.StringIO(pedal.getvalue()))] == [e for _, e, _ in PLAYED]


def test_pedal_extends_notes_is_a_note_option_kept_by_tasks() -> None:
    from dataclasses import asdict

    options = NoteOptions(pedal_extends_notes=True)
    assert NoteOptions(**asdict(options)) == options and not NoteOptions().pedal_extends_notes


# --- our replacements of Transkun's code, against Transkun's ---


@pytest.fixture(scope="module")
def net() -> Any:
    if not PIANO:
        pytest.skip("torch/transkun missing: `make test` installs them")
    from midiscribe.core import piano_net

    return piano_net.load_network(quantize=False)


@needs_piano
def test_mel_filterbank_is_the_one_in_the_checkpoint() -> None:
    import importlib.resources

    import torch

    from midiscribe.core.mel import mel_filterbank

    with (importlib.resources.files("transkun") / "pretrained" / "2.0.pt").open("rb") as f:
        stored = torch.load(f, map_location="cpu", weights_only=True)["state_dict"]
    ref = stored["framewiseFeatureExtractor.freq2mels"].numpy()
    np.testing.assert_allclose(mel_filterbank(2049, 30, 8000, 229, 44100), ref, atol=1e-4)


@needs_piano
def test_scores_and_viterbi_match_transkuns(net: Any) -> None:
    import torch
    from transkun.CRF.NeuralSemiCRFInterval import viterbiBackward

    from midiscribe.core import piano_net

    torch.manual_seed(0)
    ctx = torch.randn(1, 90, 60, net.scorer.size) * 0.5
    with torch.inference_mode():
        s_ref, skip = net.scorer(ctx)  # (offset, onset, batch, track)
        ours = piano_net.interval_scores(net.scorer, ctx)
    ref = s_ref.flatten(-2, -1)
    np.testing.assert_allclose(ours, ref.permute(1, 0, 2).numpy(), rtol=1e-5, atol=1e-4)
    forced = [int(k) for k in torch.randint(0, 20, (90,))]
    paths = viterbiBackward(ref, skip.flatten(-2, -1), forced)
    assert piano_net.viterbi(ref.permute(1, 0, 2).contiguous().numpy(), forced) == paths
    assert sum(len(p) for p in paths) > 0


# --- end to end on a rendered clip ---


def _soundfont() -> str:
    from midiscribe.formats.render import DEFAULT_SOUNDFONTS, SOUNDFONT_ENV

    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"FluidSynth not usable ({exc}); apt-get install libfluidsynth3")
    found = os.environ.get(SOUNDFONT_ENV) or next((str(p) for p in DEFAULT_SOUNDFONTS if p.is_file()), None)
    if found is None:
        pytest.skip("no .sf2 SoundFont found; apt-get install timgm6mb-soundfont")
    return found


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of General MIDI piano (FluidSynth) playing PLAYED with the sustain pedal, as WAV."""
    from midiscribe.formats.render import render_wav

    path = tmp_path_factory.mktemp("piano") / "clip.wav"
    render_wav(transcription(PLAYED, (Pedal(*PEDAL),)), path, soundfont=_soundfont(), synth="soundfont")
    return path


@needs_piano
def test_piano_through_the_cli(clip: Path, tmp_path: Path) -> None:
    """One short clip, one 16 s segment: the notes as played, with velocities, and the CSV's pedal field."""
    import pretty_midi

    out = tmp_path / "out"
    done = subprocess.run(
        [str(EXE), "transcribe", str(clip), "--model", "piano", "--notes-csv", "--csv-pedal", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    pm = pretty_midi.PrettyMIDI(str(out / "clip.mid"))
    notes = sorted((n.pitch, n.start, n.end) for inst in pm.instruments for n in inst.notes)
    assert [p for p, _, _ in notes] == sorted(p for _, _, p in PLAYED)
    for (_, start, end), (_, ref_start, ref_end) in zip(notes, sorted((p, s, e) for s, e, p in PLAYED), strict=True):
        assert abs(start - ref_start) < 0.05
        # No claim on offsets here: a SoundFont's piano under CC64 just rings on, with none of a real
        # piano's pedal sound (offsets are scored on the eval set, bench/piano.py).
        assert start < end < max(ref_end, PEDAL[1]) + 0.3
    assert all(20 <= n.velocity <= 127 for inst in pm.instruments for n in inst.notes)
    rows = list(csv.DictReader((out / "clip.csv").open()))
    assert len(rows) == len(PLAYED) and all(float(r["pedal_end_s"]) >= float(r["end_s"]) for r in rows)
    pedals = [(round(c.time, 2), c.value) for inst in pm.instruments for c in inst.control_changes if c.number == 64]
    print("pedal heard in the rendered clip:", pedals)


@needs_piano
def test_a_real_piano_recording_as_an_array(eval_items: list[dict[str, Any]], tmp_path: Path) -> None:
    """MAESTRO's 2 s Disklavier clip, from an array at another rate: both notes, on time."""
    from midiscribe.core.audio import load_audio
    from midiscribe.core.piano import PianoModel

    item = next(it for it in eval_items if it["source"] == "maestro")
    samples = load_audio(item["audio_path"], sample_rate=48_000)  # any rate: resampled to 44.1 kHz
    tr = PianoModel().transcribe(samples, sample_rate=48_000)
    with Path(item["reference_csv_path"]).open() as f:
        ref = list(csv.DictReader(f))
    assert [n.pitch for n in tr.notes] == [int(r["midi_pitch"]) for r in ref]
    for note, r in zip(tr.notes, ref, strict=True):
        assert abs(note.start_s - float(r["onset_s"])) < 0.05
    assert tr.duration_s == pytest.approx(2.0, abs=0.01)
    assert all(0 <= p.start_s < p.end_s <= tr.duration_s for p in tr.pedals)
    write_midi(tr, tmp_path / "m.mid")
    ccs = [m.value for m in mido.MidiFile(tmp_path / "m.mid").tracks[1] if m.type == "control_change"]
    assert len(ccs) == 2 * len(tr.pedals)


def test_events_become_notes_and_pedals_with_the_options() -> None:
    """Pure: decoded events to a Transcription (frequency range, velocities, pedal, repeated keys)."""
    from midiscribe.core.piano import _transcription
    from midiscribe.core.piano_net import Event

    events = [
        Event(0.1, 0.5, 67, 64, True, True),
        Event(0.4, 0.9, 67, 80, True, True),  # the key struck again before the first release
        Event(0.2, 0.6, 72, 127, True, True),
        Event(0.0, 1.5, -64, 127, True, True),
        Event(0.3, 0.8, -67, 127, True, True),  # soft pedal: not written
    ]
    tr = _transcription(events, 1.0, NoteOptions())
    assert [(n.start_s, n.end_s, n.pitch, n.velocity) for n in tr.notes] == [
        (0.1, 0.4, 67, 64),
        (0.2, 0.6, 72, 127),
        (0.4, 0.9, 67, 80),
    ]
    assert tr.pedals == (Pedal(0.0, 1.0),)  # cut at the end of the audio
    high = _transcription(events, 1.0, NoteOptions(min_frequency_hz=450.0))
    assert [n.pitch for n in high.notes] == [72]  # G4 (392 Hz) is below the range
    held = _transcription(events, 1.0, NoteOptions(pedal_extends_notes=True))
    assert [(n.pitch, n.end_s) for n in held.notes] == [(67, 0.4), (72, 1.0), (67, 1.0)]
