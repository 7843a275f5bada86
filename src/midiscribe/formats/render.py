"""Sonify a transcription as a 16-bit mono WAV, to hear what was transcribed.

Two synthesizers:

* a SoundFont played by FluidSynth (the ``soundfont`` extra: ``pip install 'midiscribe[soundfont]'``
  plus the system library, ``apt-get install libfluidsynth3``), fed the same events as
  :func:`~midiscribe.formats.midi.to_midi` writes, so it sounds like the MIDI file;
* a built-in additive synth in numpy, used when no SoundFont or no FluidSynth is available.
  It gives every note its own bends, whatever ``MidiOptions.multiple_pitch_bends`` says, and
  ignores ``MidiOptions.program``.

FluidSynth renders stereo; it is mixed down to mono so both paths write the same format.
The output lasts the transcription's duration, extended to leave a tail of ``TAIL_S`` after
the last note's end, and is normalised to a peak of -1 dBFS.
"""

from __future__ import annotations

import logging
import math
import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from midiscribe.core.results import Note, Transcription
from midiscribe.errors import OptionsError
from midiscribe.formats.midi import MidiOptions, to_midi

__all__ = ["DEFAULT_SOUNDFONTS", "SOUNDFONT_ENV", "TAIL_S", "RenderOptions", "Synth", "render_wav"]

_log = logging.getLogger("midiscribe")

Synth = Literal["auto", "builtin", "soundfont"]
"""``auto``: FluidSynth if a SoundFont and the library are found, else built-in;
``builtin``: never FluidSynth; ``soundfont``: FluidSynth or an error."""

SOUNDFONT_ENV = "MIDISCRIBE_SOUNDFONT"
DEFAULT_SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
)
TAIL_S = 1.0
"""Seconds kept after the last note's end, for the release and reverb to ring out."""

_PEAK = 10 ** (-1 / 20)  # -1 dBFS
_CHUNK = 1 << 16  # samples per FluidSynth call and per WAV write
_ATTACK_S = 0.005
_RELEASE_S = 0.08
_N_HARMONICS = 8
_SILENT = math.log(1e4)  # a partial is dropped once it has decayed by 80 dB


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How a transcription is sonified; the instrument comes from ``MidiOptions.program``."""

    sample_rate: int = 44100
    soundfont: str | None = None
    synth: Synth = "auto"

    def __post_init__(self) -> None:
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 192_000:
            raise OptionsError(f"sample_rate must be an integer between 8000 and 192000, got {rate!r}")
        if self.synth not in get_args(Synth):
            raise OptionsError(f"synth must be one of {get_args(Synth)}, got {self.synth!r}")


def render_wav(
    transcription: Transcription,
    target: str | os.PathLike[str] | BinaryIO,
    *,
    midi_options: MidiOptions | None = None,
    soundfont: str | os.PathLike[str] | None = None,
    sample_rate: int = 44100,
    synth: Synth = "auto",
) -> None:
    """Write the notes as a 16-bit mono PCM WAV to a path or a binary file object.

    ``soundfont`` (else ``$MIDISCRIBE_SOUNDFONT``, else the first of ``DEFAULT_SOUNDFONTS``
    that exists) selects FluidSynth; a soundfont named explicitly that does not exist raises
    :class:`~midiscribe.errors.OptionsError`.
    """
    options = RenderOptions(sample_rate, None if soundfont is None else os.fspath(soundfont), synth)
    samples = _render(transcription, options, midi_options or MidiOptions())
    _write_wav(samples, target, options.sample_rate)


def _render(transcription: Transcription, options: RenderOptions, midi: MidiOptions) -> NDArray[np.float32]:
    sr = options.sample_rate
    end_s = max((note.end_s + TAIL_S for note in transcription.notes), default=0.0)
    out = np.zeros(round(max(transcription.duration_s, end_s, 0.0) * sr), dtype=np.float32)
    soundfont, explicit = _find_soundfont(options)
    fluidsynth = _load_fluidsynth(required=options.synth == "soundfont") if soundfont else None
    done = False
    if soundfont is not None and fluidsynth is not None:
        done = _render_fluidsynth(fluidsynth, soundfont, transcription, midi, out, sr)
        if not done and (explicit or options.synth == "soundfont"):
            raise OptionsError(f"FluidSynth could not load the soundfont {soundfont}")
        if not done:
            _log.warning("FluidSynth could not load %s; using the built-in synth", soundfont)
    if not done:
        for note in transcription.notes:
            _add_note(out, note, transcription.frame_period_s, sr)
    peak = max(float(out.max(initial=0.0)), -float(out.min(initial=0.0)))
    if peak > 0:
        out *= np.float32(_PEAK / peak)
    return out


def _find_soundfont(options: RenderOptions) -> tuple[Path | None, bool]:
    """The SoundFont to use, and whether the caller named it (argument or environment)."""
    if options.synth == "builtin":
        return None, False
    named = options.soundfont or os.environ.get(SOUNDFONT_ENV) or None
    if named is not None:
        if not Path(named).is_file():
            raise OptionsError(f"soundfont not found: {named}")
        return Path(named), True
    found = next((path for path in DEFAULT_SOUNDFONTS if path.is_file()), None)
    if found is None and options.synth == "soundfont":
        raise OptionsError(f"no soundfont found: pass soundfont= or set {SOUNDFONT_ENV}")
    return found, False


def _load_fluidsynth(*, required: bool) -> Any:
    """The ``fluidsynth`` module, or None (with a warning) if it or its C library is missing."""
    try:
        import fluidsynth  # an optional extra: imported on use, never at import
    except (ImportError, OSError) as exc:
        hint = "pip install 'midiscribe[soundfont]' and apt-get install libfluidsynth3"
        if required:
            raise OptionsError(f"FluidSynth is not available ({exc}): {hint}") from exc
        _log.warning("FluidSynth is not available (%s); using the built-in synth. To fix: %s", exc, hint)
        return None
    return fluidsynth


def _render_fluidsynth(
    fluidsynth: Any,
    soundfont: Path,
    transcription: Transcription,
    midi: MidiOptions,
    out: NDArray[np.float32],
    sr: int,
) -> bool:
    """Play the MIDI events offline into ``out``; False if the SoundFont does not load."""
    synth = fluidsynth.Synth(samplerate=float(sr))
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            return False
        for channel in range(16):
            _set_bend_range(synth, channel)
        now_s = 0.0
        pos = 0
        for message in to_midi(transcription, midi):  # mido yields delta times in seconds
            now_s += message.time
            pos = _fill(synth, out, pos, min(round(now_s * sr), len(out)))
            _send(synth, sfid, message)
        _fill(synth, out, pos, len(out))
        return True
    finally:
        synth.delete()


def _set_bend_range(synth: Any, channel: int) -> None:
    """RPN 0 (pitch-bend sensitivity) to 2 semitones, the range midi.py encodes bends in."""
    for control, value in ((101, 0), (100, 0), (6, 2), (38, 0), (101, 127), (100, 127)):
        synth.cc(channel, control, value)


def _send(synth: Any, sfid: int, message: Any) -> None:
    if message.type == "note_on" and message.velocity > 0:
        synth.noteon(message.channel, message.note, message.velocity)
    elif message.type in ("note_on", "note_off"):
        synth.noteoff(message.channel, message.note)
    elif message.type == "pitchwheel":
        synth.pitch_bend(message.channel, message.pitch)
    elif message.type == "program_change":
        synth.program_select(message.channel, sfid, 0, message.program)
    elif message.type == "control_change":  # the sustain pedal (CC64) of models that hear it
        synth.cc(message.channel, message.control, message.value)


def _fill(synth: Any, out: NDArray[np.float32], pos: int, end: int) -> int:
    """Render samples ``pos:end`` (interleaved stereo int16, mixed to mono); return ``end``."""
    while pos < end:
        count = min(_CHUNK, end - pos)
        stereo = np.asarray(synth.get_samples(count), dtype=np.float32).reshape(-1, 2)
        out[pos : pos + count] = stereo.mean(axis=1) / 32768.0
        pos += count
    return max(pos, end)


def _add_note(out: NDArray[np.float32], note: Note, frame_period_s: float, sr: int) -> None:
    """Add one note of the built-in synth into ``out``, vectorised over its samples.

    A 5 ms attack and an 80 ms release after the note's end avoid clicks; loudness follows
    ``velocity**1.5``. Work and memory are proportional to the note's length.
    """
    start = max(0, round(note.start_s * sr))
    held_s = max(note.end_s - note.start_s, _ATTACK_S)
    count = min(round((held_s + _RELEASE_S) * sr), len(out) - start)
    if count <= 0:
        return
    t = np.arange(count, dtype=np.float32) / np.float32(sr)
    freq = _frequency(note, t, frame_period_s)
    # Integrate frequency into phase (bends glide, no jumps) in float64, then wrap it to one
    # turn so that float32 is exact enough for the partials.
    turns = (np.cumsum(freq, dtype=np.float64) - freq[0]) / sr
    phase = ((turns - np.floor(turns)) * (2 * np.pi)).astype(np.float32)
    tone = _partials(phase, t, note, sr, max_partial=int(0.45 * sr / float(freq.max())))
    tone *= np.minimum(t / np.float32(_ATTACK_S), np.float32(1.0))
    tone *= np.clip(np.float32(1.0) - (t - np.float32(held_s)) / np.float32(_RELEASE_S), 0.0, 1.0)
    out[start : start + count] += tone


def _partials(
    phase: NDArray[np.float32], t: NDArray[np.float32], note: Note, sr: int, max_partial: int
) -> NDArray[np.float32]:
    """Piano-like additive tone: partial ``h`` has amplitude ``h**-tilt`` (louder notes are
    brighter) and decays exponentially, faster the higher it is (a bright attack, a mellow
    tail) and faster for higher notes. ``sin(h*phase)`` comes from the Chebyshev recurrence
    ``sin((h+1)x) = 2cos(x)sin(hx) - sin((h-1)x)``, and each partial is computed only until it
    has decayed by 80 dB: both keep long renders fast.
    """
    velocity = note.velocity / 127
    tilt = 2.0 - velocity
    base = 0.8 * 2 ** ((note.pitch - 60) / 24)  # 1/s, the fundamental's decay rate
    step = 0.8 * base  # each partial decays this much faster than the one below
    twice_cos = 2 * np.cos(phase)
    prev, cur = np.zeros_like(phase), np.sin(phase)
    envelope = np.exp(np.float32(-base) * t)
    faster = np.exp(np.float32(-step) * t)
    tone = np.zeros_like(phase)
    for h in range(1, min(_N_HARMONICS, max_partial) + 1):
        n = min(len(t), math.ceil(_SILENT / (base + step * (h - 1)) * sr))
        gain = np.float32(velocity**1.5 * h**-tilt)
        tone[:n] += gain * envelope[:n] * cur[:n]
        prev, cur = cur[:n], twice_cos[:n] * cur[:n] - prev[:n]
        envelope[:n] *= faster[:n]
    return tone


def _frequency(note: Note, t: NDArray[np.float32], frame_period_s: float) -> NDArray[np.float32]:
    """Instantaneous frequency in Hz: the pitch plus the bends, interpolated between frames."""
    if not note.bends_cents:
        return np.full(len(t), 440.0 * 2 ** ((note.pitch - 69) / 12), dtype=np.float32)
    cents = np.asarray(note.bends_cents, dtype=np.float64)
    knots_hz = 440.0 * np.exp2((note.pitch - 69) / 12 + cents / 1200)
    knots_s = np.arange(len(cents)) * frame_period_s
    return np.interp(t, knots_s, knots_hz).astype(np.float32)


def _write_wav(samples: NDArray[np.float32], target: str | os.PathLike[str] | BinaryIO, sr: int) -> None:
    destination = os.fspath(target) if isinstance(target, str | os.PathLike) else target
    with wave.open(destination, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sr)
        handle.setnframes(len(samples))  # known up front: a non-seekable target works too
        for start in range(0, len(samples), _CHUNK):
            chunk = np.clip(samples[start : start + _CHUNK], -1.0, 1.0) * 32767.0
            handle.writeframes(np.round(chunk).astype("<i2").tobytes())
