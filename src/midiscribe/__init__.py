"""midiscribe: audio to MIDI with the basic-pitch model on onnxruntime.

    >>> from midiscribe import transcribe
    >>> result = transcribe("song.mp3")          # doctest: +SKIP
    >>> result.notes[0].pitch, result.notes[0].start_s   # doctest: +SKIP

Nothing happens at import: the model loads on first use, once per process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from midiscribe.errors import (
    AudioError,
    AudioNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    InputTooLargeError,
    MidiscribeError,
    ModelError,
    ModelWeightsMissingError,
    OptionsError,
    OutputExistsError,
    ServiceError,
    UnsupportedAudioError,
)

if TYPE_CHECKING:
    from midiscribe.core.outputs import ModelOutputs
    from midiscribe.core.results import Note, NoteOptions, Transcription
    from midiscribe.core.transcribe import retune, transcribe

__version__ = "0.1.0"

# Imported on first use, so that `import midiscribe.client` (or `.webhooks`, `.errors`) does not
# load numpy, onnxruntime or PyAV (issue 14: a thin install can use the client).
_LAZY = {
    "ModelOutputs": "midiscribe.core.outputs",
    "Note": "midiscribe.core.results",
    "NoteOptions": "midiscribe.core.results",
    "Transcription": "midiscribe.core.results",
    "retune": "midiscribe.core.transcribe",
    "transcribe": "midiscribe.core.transcribe",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'midiscribe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AudioError",
    "AudioNotFoundError",
    "AudioTooLongError",
    "EmptyAudioError",
    "InputTooLargeError",
    "MidiscribeError",
    "ModelError",
    "ModelOutputs",
    "ModelWeightsMissingError",
    "Note",
    "NoteOptions",
    "OptionsError",
    "OutputExistsError",
    "ServiceError",
    "Transcription",
    "UnsupportedAudioError",
    "__version__",
    "retune",
    "transcribe",
]
