"""Log records that carry the task id, as text or one JSON object per line.

Configured only by the commands (``serve``, ``worker`` and the embedded worker processes);
the library itself only logs. The task id comes from :func:`task_context` (set around every
run of a task) or from ``extra={"task_id": ...}``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

_TASK_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("midiscribe_task_id", default=None)
TEXT_FORMAT = "%(asctime)s {role} %(levelname)s %(name)s [task=%(task_id)s]: %(message)s"


@contextlib.contextmanager
def task_context(task_id: str) -> Iterator[None]:
    """Every record logged inside carries ``task_id``."""
    token = _TASK_ID.set(task_id)
    try:
        yield
    finally:
        _TASK_ID.reset(token)


class _TaskIdFilter(logging.Filter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_id", None) is None:
            record.task_id = _TASK_ID.get() or "-"
        record.role = self.role
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, role, pid, task_id, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "role": getattr(record, "role", ""),
            "pid": record.process,
            "task_id": None if (task_id := getattr(record, "task_id", "-")) == "-" else task_id,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(role: str, fmt: str = "text", level: int = logging.INFO) -> None:
    """Send every logger's records to stderr in ``fmt`` ("text" or "json"), tagged with ``role``."""
    handler = logging.StreamHandler()
    handler.addFilter(_TaskIdFilter(role))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT.format(role=role)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per engine otherwise; migrate.py logs


class Outage:
    """For a background loop: the first failure of a run of failures is logged with its cause,
    the repeats only counted, and the recovery logged once, so an outage of a dependency does not
    write a traceback every round (issue 12)."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger, self.what = logger, what
        self._since: float | None = None
        self._count = 0

    def failed(self, exc: BaseException) -> None:
        self._count += 1
        if self._since is None:
            self._since = time.monotonic()
            cause = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            self.logger.warning("%s failing (%s); retrying quietly until it recovers", self.what, cause)

    def ok(self) -> None:
        if self._since is not None:
            seconds, count = time.monotonic() - self._since, self._count
            self._since, self._count = None, 0
            self.logger.warning("%s recovered after %.0f s (%d failed rounds)", self.what, seconds, count)
