"""Retrying what a task does with the outside world: the store, the database, the network.

Issue 12, defect 2: a 15 s S3 outage failed the tasks that were writing results, for good. A task
fails for its input (bad audio, a URL that answers 404) at once; for a dependency that is down
(connection refused or reset, a timeout, a 5xx, a throttle) only after ``transient_retry_s``
(bounded backoff, about a minute in all by default) is spent, with a reason that says which
dependency and for how long. Each retry is logged; the task's lease is kept meanwhile when the
database can keep it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

log = logging.getLogger("midiscribe.jobs")

T = TypeVar("T")

# S3 error codes that mean "try again", whatever the HTTP status says (AWS's own retry list).
_S3_RETRYABLE = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "InternalError"}
    | {"ServiceUnavailable", "503", "500", "502", "504"}
)


class DependencyDown(Exception):
    """A dependency stayed unavailable through every retry; ``dependency`` says which."""

    def __init__(self, dependency: str, what: str, tries: int, waited_s: float, cause: BaseException) -> None:
        self.dependency, self.cause = dependency, cause
        super().__init__(
            f"the {dependency} was unavailable while {what}: {tries} tries over {waited_s:.0f} s "
            f"({type(cause).__name__})"
        )


def dependency_of(exc: BaseException) -> str | None:
    """Which dependency a transient error comes from ("store", "database", "network"), or None
    when it is not transient (a bug, or the input's fault: those are not retried)."""
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, PoolTimeout | OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return "database"
    store = _store_error(exc)
    if store:
        return "store"
    if isinstance(exc, ConnectionError | TimeoutError):
        return "network"
    return None


def _store_error(exc: BaseException) -> bool:
    try:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
            ResponseStreamingError,
        )
    except ImportError:
        return False
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ConnectTimeoutError | ReadTimeoutError):
        return True
    if isinstance(exc, ResponseStreamingError):
        return True
    if isinstance(exc, S3UploadFailedError):  # boto3 folds the cause into the message
        text = str(exc)
        return any(code in text for code in ("Could not connect", "Connection was closed", "timeout", *_S3_RETRYABLE))
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or str(error.get("Code")) in _S3_RETRYABLE
    return False


def retrying(
    what: str,
    call: Callable[[], T],
    schedule_s: Sequence[float],
    *,
    between: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, retried after each delay of ``schedule_s`` while it fails with a transient error;
    :class:`DependencyDown` once they are spent. ``between`` runs before each retry (keep the lease;
    it may raise to stop, e.g. the task was cancelled meanwhile)."""
    started = time.monotonic()
    for attempt in range(len(schedule_s) + 1):
        try:
            return call()
        except Exception as exc:
            dependency = dependency_of(exc)
            if dependency is None:
                raise
            if attempt == len(schedule_s):
                raise DependencyDown(dependency, what, attempt + 1, time.monotonic() - started, exc) from exc
            delay = schedule_s[attempt]
            log.warning(
                "%s unavailable while %s (%s: %s); retry %d/%d in %.1f s",
                dependency,
                what,
                type(exc).__name__,
                str(exc)[:200],
                attempt + 1,
                len(schedule_s),
                delay,
            )
            sleep(delay)
            if between is not None:
                between()
    raise AssertionError("unreachable")
