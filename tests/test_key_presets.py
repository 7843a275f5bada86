"""Key estimation on synthetic scales and cadences; the key signature in the MIDI file; the presets table."""

from __future__ import annotations

import io

import mido
import pytest

from midiscribe import Note, NoteOptions, Transcription
from midiscribe.cli.transcribe import PRESET_NAMES
from midiscribe.core.presets import DEFAULT_PRESET, PRESETS, get_preset, preset_note_options
from midiscribe.errors import OptionsError
from midiscribe.formats.midi import write_midi
from midiscribe.music.analysis import analyse
from midiscribe.music.key import Key, estimate_key

MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


def line(tonic: int, degrees: tuple[int, ...], cadence: tuple[tuple[int, ...], ...]) -> list[Note]:
    """A scale up and down from ``tonic``, then block chords (degrees above the tonic), tonic last."""
    notes, t = [], 0.0
    for d in (*degrees, 12, *reversed(degrees)):
        notes.append(Note(t, t + 0.25, 60 + tonic + d, 0.5))
        t += 0.25
    for chord in cadence:
        notes += [Note(t, t + 1.0, 48 + tonic + d, 0.5) for d in chord]
        t += 1.0
    return notes


I_IV_V_I = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7, 12))
I_IV_V_I_MINOR = ((0, 3, 7), (5, 8, 12), (7, 11, 14), (0, 3, 7, 12))


@pytest.mark.parametrize("tonic", range(12))
def test_major_keys(tonic: int) -> None:
    key = estimate_key(line(tonic, MAJOR, I_IV_V_I))
    assert key is not None and (key.tonic, key.mode) == (tonic, "major") and key.confidence > 0.8


@pytest.mark.parametrize("tonic", [9, 4, 2, 0, 6])
def test_minor_keys(tonic: int) -> None:
    key = estimate_key(line(tonic, HARMONIC_MINOR, I_IV_V_I_MINOR))
    assert key is not None and (key.tonic, key.mode) == (tonic, "minor")


def test_too_few_notes_and_names() -> None:
    assert estimate_key([Note(0, 1, 60, 0.5)] * 3) is None
    assert Key(3, "major").name == "Eb major" and Key(3, "major").fifths == -3
    assert Key(6, "minor").name == "F# minor" and Key(6, "minor").fifths == 3
    with pytest.raises(OptionsError, match="temperley"):
        estimate_key(line(0, MAJOR, I_IV_V_I), profile="nope")


def test_key_signature_is_written_to_the_midi_file() -> None:
    tr = analyse(Transcription(notes=tuple(line(2, MAJOR, I_IV_V_I)), duration_s=10.0, frame_period_s=0.0116))
    assert tr.key is not None and tr.key.name == "D major"
    buf = io.BytesIO()
    write_midi(tr, buf)
    midi = mido.MidiFile(file=io.BytesIO(buf.getvalue()))
    assert [m.key for m in midi.tracks[0] if m.type == "key_signature"] == ["D"]


def test_general_is_the_default_and_basic_pitch_is_exact() -> None:
    assert DEFAULT_PRESET == "general" and preset_note_options() == NoteOptions()
    bp = preset_note_options("basic-pitch")
    assert (bp.onset_threshold, bp.frame_threshold, bp.min_note_length_ms, bp.melodia_trick) == (0.5, 0.3, 127.7, True)
    assert get_preset("basic-pitch").program == 4  # basic-pitch writes Electric Piano 1
    assert (
        tuple(PRESETS)
        == PRESET_NAMES
        == (
            "general",
            "piano",
            "guitar",
            "bass",
            "voice",
            "strings",
            "winds",
            "basic-pitch",
        )
    )


def test_explicit_options_override_the_preset() -> None:
    piano = get_preset("piano")
    assert not piano.pitch_bends and not piano.melodia_trick
    opts = preset_note_options("piano", onset_threshold=0.45, pitch_bends=True, melodia_trick=None)
    assert opts.onset_threshold == 0.45 and opts.pitch_bends is True  # given: wins
    assert opts.frame_threshold == piano.frame_threshold and opts.melodia_trick is False  # not given: preset's
    assert opts.min_frequency_hz == piano.min_frequency_hz


def test_unknown_preset_names_the_valid_ones() -> None:
    with pytest.raises(OptionsError, match="general, piano, guitar, bass, voice, strings, winds, basic-pitch"):
        get_preset("banjo")


def test_every_preset_is_valid() -> None:
    for name, preset in PRESETS.items():
        opts = preset.note_options()
        assert 0 <= preset.program <= 127, name
        if opts.min_frequency_hz and opts.max_frequency_hz:
            assert opts.min_frequency_hz < opts.max_frequency_hz
