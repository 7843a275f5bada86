"""A dependency is down: answer 503 ``unavailable`` with ``Retry-After`` at once, and log it once.

The database and the object store are the API's dependencies. A request that meets one of them
down (SQLite locked past the short busy timeout, PostgreSQL unreachable or out of connections, a
store that refuses writes) gets a fast, clear 503 instead of a hang and a 500, so a client (or a
load balancer) retries; with an ``Idempotency-Key`` the retry cannot duplicate a task. The first
failure of an outage is logged with its cause; repeats are counted and summed up when the
outage ends, so a flood of requests does not flood the log.

Other code raises :class:`Unavailable` itself (``with dependency("store"):``) or lets a driver error
through: :func:`classify` recognises SQLAlchemy's "cannot reach or lock the database" errors.
The distributed mode's broker check belongs here too (``/readyz``, issue 12).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from midiscribe.service.api.errors import ApiError, retry_after

log = logging.getLogger("midiscribe.api")

RETRY_AFTER_S = {"database": 2, "store": 5}
_QUIET_S = 30.0  # an outage ends after this long without a failure
# SQLite reports schema mistakes as OperationalError too; those are our bugs (500), not an outage.
_SQLITE_BUGS = ("no such ", "syntax error", "has no column", "table ", "ambiguous")


class Unavailable(ApiError):
    """503 ``unavailable``: ``dependency`` cannot serve the request right now."""

    def __init__(self, dependency: str, cause: BaseException | str | None = None) -> None:
        self.dependency = dependency
        super().__init__(
            503,
            "unavailable",
            f"the {dependency} is unavailable right now; retry shortly (with the same Idempotency-Key)",
            retry_after(RETRY_AFTER_S.get(dependency, 5)),
        )
        self.cause = cause


def classify(exc: BaseException) -> Unavailable | None:
    """The 503 for an exception that means a dependency is down, else None (a bug: 500)."""
    if isinstance(exc, Unavailable):
        return exc
    if isinstance(exc, PoolTimeout):
        return Unavailable("database", exc)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return Unavailable("database", exc)
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        if exc.orig is not None and type(exc.orig).__module__.startswith("sqlite3") and text.startswith(_SQLITE_BUGS):
            return None
        return Unavailable("database", exc)
    return None


@contextmanager
def dependency(name: str) -> Iterator[None]:
    """Any error inside becomes :class:`Unavailable` for ``name`` (API errors pass through)."""
    try:
        yield
    except ApiError:
        raise
    except Exception as exc:
        raise Unavailable(name, exc) from exc


class OutageLog:
    """One warning when a dependency starts failing, one line when it has been quiet again."""

    def __init__(self, quiet_s: float = _QUIET_S) -> None:
        self.quiet_s = quiet_s
        self._open: dict[str, tuple[float, float, int]] = {}  # name -> (since, last, count)
        self._lock = threading.Lock()

    def failed(self, error: Unavailable) -> None:
        now = time.monotonic()
        with self._lock:
            self._close_quiet(now)
            since, _, count = self._open.get(error.dependency, (now, now, 0))
            self._open[error.dependency] = (since, now, count + 1)
        if count == 0:
            cause = error.cause
            reason = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(cause or "")
            log.warning("%s unavailable (%s); answering 503 until it recovers", error.dependency, reason[:300])

    def _close_quiet(self, now: float) -> None:
        for name, (since, last, count) in list(self._open.items()):
            if now - last > self.quiet_s:
                del self._open[name]
                log.warning("%s outage over: %d request(s) answered 503 in %.0f s", name, count, last - since)
