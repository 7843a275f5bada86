"""The client's errors: every envelope code to our class, ``Retry-After``, and when to retry."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from dataclasses import dataclass

import httpx

from midiscribe.client._types import ENV_KEY, TaskErrorInfo, TaskInfo
from midiscribe.errors import (
    AudioNotFoundError,
    AudioTooLongError,
    AuthenticationError,
    FileExpiredError,
    IdempotencyKeyReusedError,
    InputTooLargeError,
    InvalidRequestError,
    MidiscribeError,
    NotFoundError,
    OptionsError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    ServiceConnectionError,
    ServiceError,
    ServiceUnavailableError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotCompletedError,
    TaskNotFoundError,
    UnsupportedAudioError,
)

# Every code of the README's error table (and every code a failed task reports) -> our class.
# The library's own class where there is one, so `except AudioTooLongError` catches a local and a
# remote one alike.
ERROR_CODES: dict[str, type[MidiscribeError]] = {
    "invalid_parameters": OptionsError,
    "invalid_options": OptionsError,
    "invalid_audio_path": InvalidRequestError,
    "forbidden_address": InvalidRequestError,
    "invalid_webhook_url": InvalidRequestError,
    "s3_not_configured": InvalidRequestError,
    "score_rendering_unavailable": InvalidRequestError,
    "model_not_installed": InvalidRequestError,  # issue 10: the server lacks the model's extra
    "invalid_request": InvalidRequestError,
    "unsupported_media_type": InvalidRequestError,
    "method_not_allowed": InvalidRequestError,
    "unauthorized": AuthenticationError,
    "invalid_link": PermissionDeniedError,
    "access_denied": PermissionDeniedError,
    "task_not_found": TaskNotFoundError,
    "input_not_found": AudioNotFoundError,
    "file_not_found": NotFoundError,
    "not_found": NotFoundError,
    "task_not_completed": TaskNotCompletedError,
    "file_expired": FileExpiredError,
    "input_too_large": InputTooLargeError,
    "audio_too_long": AudioTooLongError,
    "unsupported_audio": UnsupportedAudioError,
    "idempotency_key_reused": IdempotencyKeyReusedError,
    "rate_limited": RateLimitError,
    "too_many_tasks": RateLimitError,
    "quota_exceeded": QuotaExceededError,
    "internal_error": ServerError,
    "unavailable": ServiceUnavailableError,
    # only as a failed task's reason
    "upstream_error": TaskFailedError,
    "upstream_timeout": TaskFailedError,
    "time_limit_exceeded": TaskFailedError,
    "worker_died": TaskFailedError,
    "store_unavailable": TaskFailedError,
    "processing_error": TaskFailedError,
    "task_cancelled": TaskCancelledError,
}
# A code we do not know (another server, a newer one): the class its status says.
STATUS_ERRORS: dict[int, type[MidiscribeError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: TaskNotCompletedError,
    410: FileExpiredError,
    413: InputTooLargeError,
    415: InvalidRequestError,
    422: UnsupportedAudioError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None if absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def error_for(response: httpx.Response, *, keyless: bool = False) -> MidiscribeError:
    """The exception for an error answer: ``{"success": false, "error": {"code", "message"}}``, or
    (from a proxy, or another server) anything else, by its status."""
    code, message, request_id = None, None, response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            request_id = error.get("request_id") or request_id
        elif isinstance(error, str):
            message = error
        message = message or body.get("message") or body.get("detail")
    if not isinstance(message, str) or not message:
        message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    if response.status_code == 401 and keyless:
        message += f" (pass api_key, or set {ENV_KEY})"
    return make_error(
        response.status_code,
        code if isinstance(code, str) else None,
        message,
        request_id=request_id,
        retry_after=retry_after_s(response),
    )


def make_error(
    status: int | None,
    code: str | None,
    message: str,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    task_id: str | None = None,
) -> MidiscribeError:
    cls = ERROR_CODES.get(code or "")
    if cls is None:
        cls = STATUS_ERRORS.get(status or 0)
    if cls is None:
        cls = ServerError if status is not None and status >= 500 else ServiceError
    exc = cls(message)
    exc.status, exc.code, exc.request_id, exc.retry_after_s, exc.task_id = (
        status,
        code,
        request_id,
        retry_after,
        task_id,
    )
    return exc


def task_error(info: TaskInfo) -> MidiscribeError:
    """What ``wait`` raises for a task that failed or was cancelled."""
    err = info.error or TaskErrorInfo(None, None, None)
    code = err.code or ("task_cancelled" if info.status == "cancelled" else None)
    message = err.message or f"task {info.task_id} {info.status}"
    exc = make_error(err.status, code, message, task_id=info.task_id)
    if type(exc) in (ServiceError, ServerError):  # the task's own failure, not this request's
        failed = TaskFailedError(message)
        failed.status, failed.code, failed.task_id = exc.status, exc.code, info.task_id
        return failed
    return exc


# ------------------------------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which answers to retry, how often and how long to wait.

    429 and 503 (and 502/504 from a proxy) are retried after their ``Retry-After`` (or an
    exponential backoff with jitter when there is none), but never after a wait longer than
    ``max_wait_s``: a daily quota's "retry at midnight" is raised at once. Connection failures are
    retried for idempotent calls; every call this client makes is one (submit sends an
    ``Idempotency-Key``)."""

    max_retries: int = 3
    max_wait_s: float = 60.0
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def backoff(self, attempt: int) -> float:
        wait: float = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return wait * random.uniform(0.5, 1.0)

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before another try, or None to stop."""
        if response.status_code not in (429, 502, 503, 504) or attempt >= self.max_retries:
            return None
        wait = retry_after_s(response)
        if wait is None:
            wait = self.backoff(attempt)
        return wait if wait <= self.max_wait_s else None

    def after_error(self, attempt: int, exc: httpx.TransportError, idempotent: bool) -> float | None:
        if attempt >= self.max_retries:
            return None
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        return self.backoff(attempt) if idempotent or never_sent else None


def connection_error(exc: httpx.TransportError, url: str) -> MidiscribeError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return ServiceConnectionError(f"connection to {url} {kind}: {exc or type(exc).__name__}")
