"""Every error midiscribe raises on purpose derives from :class:`MidiscribeError`.

The tree::

    MidiscribeError
    ├── AudioError                 the input could not be turned into samples
    │   ├── AudioNotFoundError     no such file (or URL, or S3 object: 404 ``input_not_found``)
    │   ├── UnsupportedAudioError  not audio, unknown container or codec, no audio stream
    │   ├── EmptyAudioError        an audio stream with no samples
    │   ├── AudioTooLongError      longer than the caller's limit
    │   └── InputTooLargeError     more bytes than the service accepts (413 ``input_too_large``)
    ├── ModelError                 the model cannot be loaded or run
    │   └── ModelWeightsMissingError
    ├── OptionsError               an option is out of range
    ├── OutputExistsError          an output file exists and overwriting was not asked for
    ├── WaitTimeoutError           ``Task.wait`` gave up (also a ``TimeoutError``)
    └── ServiceError               a service refused or failed a request (``midiscribe.client``)
        ├── InvalidRequestError    400/405/415: a malformed request, a bad input or webhook URL
        ├── AuthenticationError    401: no, a wrong or a revoked API key
        ├── PermissionDeniedError  403: a bad file link, or an S3 input the server may not read
        ├── NotFoundError          404: no such file or endpoint
        │   └── TaskNotFoundError  no such task for this key
        ├── TaskNotCompletedError  409: the task has no results (yet)
        ├── FileExpiredError       410: the task's files were deleted
        ├── IdempotencyKeyReusedError  422: an Idempotency-Key used with another request
        ├── RateLimitError         429: over the key's rate or task limit (``retry_after_s``)
        │   └── QuotaExceededError the key's daily audio quota is used up
        ├── ServerError            5xx
        │   └── ServiceUnavailableError  503: a dependency of the service is down
        ├── ServiceConnectionError no answer: the service cannot be reached, or the connection broke
        └── TaskFailedError        a task ended without results (``code`` says why)
            └── TaskCancelledError the task was cancelled

The service maps these to HTTP statuses in one place (``service/api/errors.py``); the client maps
the error codes back (``midiscribe.client``), to the library's own class where there is one: a 413
``audio_too_long`` raises :class:`AudioTooLongError`, a 422 ``unsupported_audio``
:class:`UnsupportedAudioError`, a 400 ``invalid_parameters`` :class:`OptionsError`. Errors a
service answered carry ``status``, ``code``, ``request_id`` and, for 429 and 503,
``retry_after_s``; a failed task's also ``task_id``. The CLI prints their message.
"""

from __future__ import annotations


class MidiscribeError(Exception):
    """Root of every error midiscribe raises on purpose.

    The attributes are set when a service answered the error (``midiscribe.client``), else None.
    """

    status: int | None = None
    """The HTTP status (for a failed task: the status its failure corresponds to)."""
    code: str | None = None
    """The error code of the service's envelope (the README's error table)."""
    request_id: str | None = None
    retry_after_s: float | None = None
    """429 and 503: how long the service asked to wait before trying again."""
    task_id: str | None = None
    """The task that failed, for errors raised by ``Task.wait``."""


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


class InputTooLargeError(AudioError):
    """The input has more bytes than the service accepts."""


class ModelError(MidiscribeError):
    """The model cannot be loaded or run."""


class ModelWeightsMissingError(ModelError):
    """The model's weights file is not on this machine."""


class OptionsError(MidiscribeError, ValueError):
    """An option is out of range."""


class OutputExistsError(MidiscribeError, FileExistsError):
    """An output file exists and overwriting was not asked for."""


class ServiceError(MidiscribeError):
    """A service refused or failed a request; ``status`` and ``code`` say how."""


class InvalidRequestError(ServiceError):
    """The request is malformed, or names an input or webhook URL the service refuses."""


class AuthenticationError(ServiceError):
    """No API key, or a wrong or revoked one."""


class PermissionDeniedError(ServiceError):
    """A file link without a valid signature, or an S3 input the service may not read."""


class NotFoundError(ServiceError):
    """No such file or endpoint."""


class TaskNotFoundError(NotFoundError):
    """No such task for this API key."""


class TaskNotCompletedError(ServiceError):
    """The task has no results, or no model outputs, yet (or any more)."""


class FileExpiredError(ServiceError):
    """The task's files were deleted (retention, or DELETE)."""


class IdempotencyKeyReusedError(ServiceError):
    """An ``Idempotency-Key`` was used before with a different request."""


class RateLimitError(ServiceError):
    """Over the key's request rate or concurrent-task limit; ``retry_after_s`` says when to retry."""


class QuotaExceededError(RateLimitError):
    """The key's daily audio quota is used up (``retry_after_s``: until UTC midnight)."""


class ServerError(ServiceError):
    """The service failed (5xx); quote ``request_id`` when reporting it."""


class ServiceUnavailableError(ServerError):
    """A dependency of the service (database, store) is down; ``retry_after_s`` says when to retry."""


class ServiceConnectionError(ServiceError, ConnectionError):
    """The service could not be reached, or the connection broke or timed out (after the retries)."""


class TaskFailedError(ServiceError):
    """A task ended without results for a reason no more specific class names (``code`` says which)."""


class TaskCancelledError(TaskFailedError):
    """The task was cancelled by its owner."""


class WaitTimeoutError(MidiscribeError, TimeoutError):
    """``Task.wait`` gave up before the task finished; the task itself goes on."""
