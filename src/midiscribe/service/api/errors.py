"""The API's error type and the one place where our errors become HTTP statuses."""

from __future__ import annotations

from midiscribe.errors import (
    AudioTooLongError,
    EmptyAudioError,
    MidiscribeError,
    OptionsError,
    UnsupportedAudioError,
)
from midiscribe.service.outside.fetch import FetchError


class ApiError(Exception):
    """An error answered with ``{"success": false, "error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def to_api_error(exc: MidiscribeError) -> ApiError:
    if isinstance(exc, FetchError):
        return ApiError(exc.status, exc.code, str(exc))
    if isinstance(exc, OptionsError):
        return ApiError(400, "invalid_parameters", str(exc))
    if isinstance(exc, AudioTooLongError):
        return ApiError(413, "audio_too_long", str(exc))
    if isinstance(exc, UnsupportedAudioError | EmptyAudioError):
        return ApiError(422, "unsupported_audio", str(exc))
    return ApiError(500, "internal_error", "an unexpected error occurred")
