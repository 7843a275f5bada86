"""Deleting a task's stored files: when its owner deletes or cancels it, and when it expires.

``RESULT_TTL_DAYS`` (default 30; 0 keeps everything) after a task finished, the sweep deletes its
results and its upload from the store and marks the task (``files_deleted_at``); its links then
answer 410. With the S3 store the same sweep deletes the objects by key (or leave it off,
``RESULT_TTL_DAYS=0``, and use a bucket lifecycle rule: README, "Retention"). The sweep also drops
``Idempotency-Key`` records older than their 24 h. Each API node runs it; deleting twice is harmless.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine

from midiscribe.service.outside.storage import ObjectStore
from midiscribe.service.records import idempotency, tasks
from midiscribe.service.settings import Settings

log = logging.getLogger("midiscribe.retention")

# Every extension a task's results can have (outputs are written under fixed keys).
RESULT_EXTS = ("mid", "wav", "flac", "opus", "mp3", "csv", "npz", "notes.json")


def task_keys(store: ObjectStore, row: Any) -> list[str]:
    """Every key a task may have written: its results and its upload."""
    keys = [store.result_key(row.id, ext) for ext in RESULT_EXTS]
    if row.input_kind == "upload":
        keys.append(row.input_ref)
    return keys


def purge_task_files(store: ObjectStore, engine: Engine, row: Any) -> None:
    """Delete a task's stored files and record that they are gone."""
    for key in task_keys(store, row):
        store.delete(key)
    tasks.mark_files_deleted(engine, row.id)


class RetentionSweeper:
    """Deletes expired tasks' files every ``retention_interval_s``."""

    def __init__(self, settings: Settings, engine: Engine, store: ObjectStore) -> None:
        self.settings, self.engine, self.store = settings, engine, store
        self._stop = threading.Event()

    def sweep_once(self) -> int:
        idempotency.purge(self.engine, self.settings.idempotency_ttl_s)
        if self.settings.result_ttl_days <= 0:
            return 0
        ttl_s = self.settings.result_ttl_days * 86400
        done = 0
        for row in tasks.expired(self.engine, ttl_s):
            try:
                purge_task_files(self.store, self.engine, row)
            except Exception as exc:  # the store may be down: the next round tries again
                log.warning("retention: cannot delete the files of task %s (%s)", row.id, type(exc).__name__)
                break
            done += 1
        if done:
            log.info("retention: deleted the files of %d expired task(s)", done)
        return done

    def run_forever(self) -> None:
        while True:
            try:
                self.sweep_once()
            except Exception:  # the database may be briefly unavailable
                log.exception("retention sweep error")
            if self._stop.wait(self.settings.retention_interval_s):
                return

    def start(self) -> None:
        threading.Thread(target=self.run_forever, name="retention", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
