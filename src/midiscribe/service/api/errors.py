"""The API's error type and the one place where our errors become HTTP statuses.

Every error a client sees is ``{"success": false, "error": {"code", "message", "request_id"}}``;
the README's error table lists every code. 429 and 503 always carry ``Retry-After``.
"""

from __future__ import annotations

from midiscribe.errors import (
    AudioTooLongError,
    EmptyAudioError,
    MidiscribeError,
    ModelNotInstalledError,
    OptionsError,
    UnsupportedAudioError,
)
from midiscribe.service.outside.fetch import FetchError
from midiscribe.service.redact import public_message

# When a 429 or 503 does not say how long to wait: a second is enough for most of them.
DEFAULT_RETRY_AFTER_S = 1


class ApiError(Exception):
    """An error answered with ``{"success": false, "error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        message = public_message(message)
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})
        if status in (429, 503) and not any(k.lower() == "retry-after" for k in self.headers):
            self.headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_S)


def retry_after(seconds: float) -> dict[str, str]:
    """The ``Retry-After`` header for a wait of ``seconds`` (whole seconds, at least 1)."""
    return {"Retry-After": str(max(1, int(seconds + 0.999)))}


def to_api_error(exc: MidiscribeError) -> ApiError:
    if isinstance(exc, FetchError):
        return ApiError(exc.status, exc.code, str(exc))
    if isinstance(exc, ModelNotInstalledError):
        return ApiError(400, "model_not_installed", str(exc))
    if isinstance(exc, OptionsError):
        return ApiError(400, "invalid_parameters", str(exc))
    if isinstance(exc, AudioTooLongError):
        return ApiError(413, "audio_too_long", str(exc))
    if isinstance(exc, UnsupportedAudioError | EmptyAudioError):
        return ApiError(422, "unsupported_audio", str(exc))
    return ApiError(500, "internal_error", "an unexpected error occurred")
