"""midiscribe: audio to MIDI with the basic-pitch model on onnxruntime.

    >>> from midiscribe import transcribe
    >>> result = transcribe("song.mp3")          # doctest: +SKIP
    >>> result.notes[0].pitch, result.notes[0].start_s   # doctest: +SKIP

Nothing happens at import: the model loads on first use, once per process.
"""

from __future__ import annotations

from midiscribe.core.outputs import ModelOutputs
from midiscribe.core.registry import MODELS, ModelSpec, NoteModel, get_model
from midiscribe.core.results import Note, NoteOptions, Transcription
from midiscribe.core.transcribe import retune, transcribe
from midiscribe.errors import (
    AudioError,
    AudioNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    MidiscribeError,
    ModelError,
    ModelNotInstalledError,
    ModelWeightsMissingError,
    OptionsError,
    OutputExistsError,
    UnknownModelError,
    UnsupportedAudioError,
)

__version__ = "0.1.0"

__all__ = [
    "MODELS",
    "AudioError",
    "AudioNotFoundError",
    "AudioTooLongError",
    "EmptyAudioError",
    "MidiscribeError",
    "ModelError",
    "ModelNotInstalledError",
    "ModelOutputs",
    "ModelSpec",
    "ModelWeightsMissingError",
    "Note",
    "NoteModel",
    "NoteOptions",
    "OptionsError",
    "OutputExistsError",
    "Transcription",
    "UnknownModelError",
    "UnsupportedAudioError",
    "__version__",
    "get_model",
    "retune",
    "transcribe",
]
