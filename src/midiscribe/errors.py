"""Every error midiscribe raises on purpose derives from :class:`MidiscribeError`.

The tree::

    MidiscribeError
    ├── AudioError                 the input could not be turned into samples
    │   ├── AudioNotFoundError     no such file
    │   ├── UnsupportedAudioError  not audio, unknown container or codec, no audio stream
    │   ├── EmptyAudioError        an audio stream with no samples
    │   └── AudioTooLongError      longer than the caller's limit
    ├── ModelError                 the model cannot be loaded or run
    │   ├── ModelWeightsMissingError
    │   └── ModelNotInstalledError the model's extra is not installed (names the pip command)
    ├── OptionsError               an option is out of range
    │   └── UnknownModelError      no model of that name (lists the valid names)
    └── OutputExistsError          an output file exists and overwriting was not asked for

The service maps these to HTTP statuses in one place; the CLI prints their message.
"""

from __future__ import annotations


class MidiscribeError(Exception):
    """Root of every error midiscribe raises on purpose."""


class AudioError(MidiscribeError):
    """The input could not be turned into samples."""


class AudioNotFoundError(AudioError):
    """The input file does not exist."""


class UnsupportedAudioError(AudioError):
    """Not audio, an unknown container or codec, or no audio stream."""


class EmptyAudioError(AudioError):
    """The input decodes to no samples at all."""


class AudioTooLongError(AudioError):
    """The input is longer than the caller's limit."""


class ModelError(MidiscribeError):
    """The model cannot be loaded or run."""


class ModelWeightsMissingError(ModelError):
    """The model's weights file is not on this machine."""


class ModelNotInstalledError(ModelError):
    """The model needs an optional extra that is not installed; ``install_hint`` is the command."""

    def __init__(self, message: str, *, model: str, install_hint: str) -> None:
        super().__init__(message)
        self.model = model
        self.install_hint = install_hint


class OptionsError(MidiscribeError, ValueError):
    """An option is out of range."""


class UnknownModelError(OptionsError):
    """No model of that name; ``valid`` lists the names there are."""

    def __init__(self, message: str, *, valid: tuple[str, ...]) -> None:
        super().__init__(message)
        self.valid = valid


class OutputExistsError(MidiscribeError, FileExistsError):
    """An output file exists and overwriting was not asked for."""
